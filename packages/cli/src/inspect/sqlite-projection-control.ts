import { CliError } from '../cli-error.ts';
import type { ProjectionControl } from './inspector.ts';
import { projectionKey, projectionName } from './projection-name.ts';
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
  const hasColumn = (table: string, column: string) =>
    db.prepare('SELECT 1 FROM pragma_table_info(?) WHERE name = ?').get(table, column) !== undefined;
  const liveVersion = (name: string): number =>
    has('factline_projection_versions')
      ? ((
          db.prepare('SELECT live_version AS v FROM factline_projection_versions WHERE name = ?').get(name) as
            | { v: number }
            | undefined
        )?.v ?? 1)
      : 1;
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
    async requestRebuild(name, given) {
      // The live version read and the request written in one transaction: no switch between the two.
      return db
        .transaction(() => {
          const at = Date.now();
          const live = liveVersion(name);
          const version = given ?? live;
          if (hasColumn('factline_projection_controls', 'rebuild_version')) {
            db.prepare(
              `INSERT INTO factline_projection_controls (name, paused, rebuild_requested_at, rebuild_version, changed_at)
             VALUES (?, 0, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET rebuild_requested_at = excluded.rebuild_requested_at,
               rebuild_version = excluded.rebuild_version, changed_at = excluded.changed_at`,
            ).run(name, at, version, at);
          } else {
            // Written by a Factline whose requests name no version: its runners take one in the live version.
            if (version !== live) {
              throw new CliError(
                `${path}: the application's runners take a rebuild request for the live version of '${name}' only (${live}), not ${version}`,
              );
            }
            db.prepare(
              `INSERT INTO factline_projection_controls (name, paused, rebuild_requested_at, changed_at) VALUES (?, 0, ?, ?)
             ON CONFLICT (name) DO UPDATE SET rebuild_requested_at = excluded.rebuild_requested_at, changed_at = excluded.changed_at`,
            ).run(name, at, at);
          }
          return { requestedAt: at, version };
          // Immediate: a deferred transaction that read first is refused its write while the application commits.
        })
        .immediate();
    },
    async rebuildProgress(name, version) {
      const requested = db
        .prepare('SELECT rebuild_requested_at AS at FROM factline_projection_controls WHERE name = ?')
        .get(name) as { at: number | null } | undefined;
      const checkpoint = db
        .prepare('SELECT position FROM factline_projections WHERE name = ?')
        .get(projectionKey(name, version)) as { position: number } | undefined;
      const head = db.prepare('SELECT COALESCE(MAX(position), 0) AS head FROM factline_events').get() as {
        head: number;
      };
      return { requestedAt: requested?.at ?? null, position: checkpoint?.position ?? 0, head: head.head };
    },
    async close() {
      db.close();
    },
  };
}
