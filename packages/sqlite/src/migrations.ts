import { StorageError } from '@factline/core';
import type { Database } from 'better-sqlite3';

/** One step of a component's schema; `up` runs once, inside a write transaction. */
export interface Migration {
  version: number;
  description: string;
  up: string;
}

/**
 * Brings `component`'s tables up to date. Runs in one IMMEDIATE transaction,
 * so two processes opening the same file at once apply each step once (the
 * second waits on the busy timeout, then finds nothing to do). Versions live in
 * `factline_migrations`, not in `PRAGMA user_version`, which the application
 * sharing this file may use for itself.
 */
export function migrate(db: Database, component: string, migrations: readonly Migration[]): void {
  db.transaction(() => applyMigrations(db, component, migrations)).immediate();
}

/** The steps of `migrate`, inside a transaction the caller holds (an inline projection's `init`). */
export function applyMigrations(db: Database, component: string, migrations: readonly Migration[]): void {
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  db.exec(`CREATE TABLE IF NOT EXISTS factline_migrations (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    description TEXT NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (component, version)
  ) WITHOUT ROWID`);
  const row = db
    .prepare('SELECT COALESCE(MAX(version), 0) AS version FROM factline_migrations WHERE component = ?')
    .get(component) as { version: number };
  if (row.version > latest) {
    throw new StorageError(
      `The database's '${component}' schema is at version ${row.version}, newer than this Factline knows (${latest}); upgrade Factline`,
    );
  }
  const record = db.prepare(
    'INSERT INTO factline_migrations (component, version, description, applied_at) VALUES (?, ?, ?, ?)',
  );
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= row.version) continue;
    db.exec(migration.up);
    record.run(component, migration.version, migration.description, Date.now());
  }
}
