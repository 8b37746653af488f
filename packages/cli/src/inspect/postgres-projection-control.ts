import { CliError } from '../cli-error.ts';
import type { ProjectionControl } from './inspector.ts';
import { connectPostgres, quoteSchema } from './postgres-inspector.ts';
import { projectionName } from './projection-name.ts';

/**
 * Pauses and resumes projections in a PostgreSQL schema: the flag the
 * application's runners (`startPostgresProjections`) read before each batch.
 *
 * @example
 * const control = await openPostgresProjectionControl('postgres://app@127.0.0.1/app', 'factline');
 */
export async function openPostgresProjectionControl(url: string, schema: string): Promise<ProjectionControl> {
  const s = quoteSchema(schema);
  const pool = await connectPostgres(url, false);
  const present = await pool.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [
    `${s}.projection_controls`,
  ]);
  if (present.rows[0]?.present !== true) {
    await pool.end();
    throw new CliError(
      `schema ${schema} has no projection_controls table: start the application's projections with a Factline that can pause them first`,
    );
  }
  return {
    async exists(name) {
      const { rows } = await pool.query<{ name: string }>(`SELECT name FROM ${s}.projections`);
      return rows.some((r) => projectionName(r.name) === name);
    },
    async setPaused(name, paused) {
      await pool.query(
        `INSERT INTO ${s}.projection_controls (name, paused, changed_at) VALUES ($1, $2, now())
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at`,
        [name, paused],
      );
    },
    close: () => pool.end(),
  };
}
