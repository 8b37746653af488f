import { CliError } from '../cli-error.ts';
import type { ProjectionControl } from './inspector.ts';
import { projectionName } from './projection-name.ts';
import { openSqliteFile } from './sqlite-inspector.ts';

/**
 * Pauses and resumes projections in a SQLite file: the flag the application's
 * runners (`startSqliteProjections`) read before each batch.
 *
 * @example
 * const control = openSqliteProjectionControl('orders.db');
 * await control.setPaused('order_summaries', true);
 */
export function openSqliteProjectionControl(path: string): ProjectionControl {
  const db = openSqliteFile(path, false);
  const has = (table: string) =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
  if (!has('factline_projection_controls')) {
    db.close();
    throw new CliError(
      `${path} has no projection controls table: start the application's projections with a Factline that can pause them first`,
    );
  }
  return {
    async exists(name) {
      const keys = db.prepare('SELECT name FROM factline_projections').all() as { name: string }[];
      return keys.some((k) => projectionName(k.name) === name);
    },
    async setPaused(name, paused) {
      db.prepare(
        `INSERT INTO factline_projection_controls (name, paused, changed_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at`,
      ).run(name, paused ? 1 : 0, Date.now());
    },
    async close() {
      db.close();
    },
  };
}
