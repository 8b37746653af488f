import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Sqlite from 'better-sqlite3';
import { readSqliteSchemaVersions } from './schema-versions.ts';
import { getSqliteEventStore } from './store/sqlite-event-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-schema-versions-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('readSqliteSchemaVersions', () => {
  it('reads each component on a read-only connection: 0 where absent, the stored version where present', async () => {
    const path = join(dir, 'app.db');
    new Sqlite(path).close();
    const empty = new Sqlite(path, { readonly: true });
    try {
      const none = readSqliteSchemaVersions(empty);
      assert.ok(none.length >= 8);
      assert.ok(none.every((c) => c.version === 0 && c.latest >= 1));
    } finally {
      empty.close();
    }
    await getSqliteEventStore({ path }).close();
    const reader = new Sqlite(path, { readonly: true });
    try {
      const versions = readSqliteSchemaVersions(reader);
      const store = versions.find((c) => c.component === 'event-store');
      assert.ok(store && store.version === store.latest && store.version >= 2);
      assert.equal(versions.find((c) => c.component === 'consumer')?.version, 0);
    } finally {
      reader.close();
    }
  });
});
