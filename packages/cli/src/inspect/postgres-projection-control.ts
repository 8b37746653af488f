import { CliError } from '../cli-error.ts';
import type { ProjectionControl } from './inspector.ts';
import { connectPostgres, quoteSchema } from './postgres-inspector.ts';
import { projectionKey, projectionName } from './projection-name.ts';

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
    async requestRebuild(name, given) {
      const at = Date.now();
      const versioned = await pool.query(
        `SELECT 1 FROM information_schema.columns
         WHERE table_schema = $1 AND table_name = 'projection_controls' AND column_name = 'rebuild_version'`,
        [schema],
      );
      const live = `COALESCE((SELECT live_version FROM ${s}.projection_versions WHERE name = $1), 1)`;
      if (versioned.rows.length > 0) {
        // The live version read in the statement that writes the request: no switch between the two.
        const { rows } = await pool.query<{ version: number }>(
          `INSERT INTO ${s}.projection_controls (name, paused, rebuild_requested_at, rebuild_version, changed_at)
           VALUES ($1, false, $2, COALESCE($3::integer, ${live}), now())
           ON CONFLICT (name) DO UPDATE SET rebuild_requested_at = excluded.rebuild_requested_at,
             rebuild_version = excluded.rebuild_version, changed_at = now()
           RETURNING rebuild_version AS version`,
          [name, at, given ?? null],
        );
        return { requestedAt: at, version: Number(rows[0]?.version ?? 1) };
      }
      // Migrated by a Factline whose requests name no version: its runners take one in the version live then.
      const { rows } = await pool.query<{ version: number }>(`SELECT ${live} AS version`, [name]);
      const current = Number(rows[0]?.version ?? 1);
      if (given !== undefined && given !== current) {
        throw new CliError(
          `schema ${schema}: the application's runners take a rebuild request for the live version of '${name}' only (${current}), not ${given}`,
        );
      }
      await pool.query(
        `INSERT INTO ${s}.projection_controls (name, paused, rebuild_requested_at, changed_at) VALUES ($1, false, $2, now())
         ON CONFLICT (name) DO UPDATE SET rebuild_requested_at = excluded.rebuild_requested_at, changed_at = now()`,
        [name, at],
      );
      return { requestedAt: at, version: current };
    },
    async rebuildProgress(name, version) {
      const { rows } = await pool.query<{ at: string | null; position: string | null; head: string }>(
        `SELECT (SELECT rebuild_requested_at FROM ${s}.projection_controls WHERE name = $1) AS at,
           (SELECT position FROM ${s}.projections WHERE name = $2) AS position,
           (SELECT COALESCE(MAX(position), 0) FROM ${s}.events) AS head`,
        [name, projectionKey(name, version)],
      );
      const row = rows[0];
      return {
        requestedAt: row?.at == null ? null : Number(row.at),
        position: Number(row?.position ?? 0),
        head: Number(row?.head ?? 0),
      };
    },
    close: () => pool.end(),
  };
}
