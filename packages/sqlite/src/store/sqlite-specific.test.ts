import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnTestChild, waitUntil } from '@factline/core/testing';
import Sqlite from 'better-sqlite3';
import { getSqliteEventStore } from '../index.ts';
import { migrate } from '../migrations.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-sqlite-specific-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `db-${++n}.db`);
const childScript = new URL('./fixtures/child.ts', import.meta.url).pathname;

/** The fixture child, with its output once it ended (exit 0, or killed with SIGKILL). */
function startChild(args: string[]) {
  const started = spawnTestChild(childScript, args);
  return { ...started, output: started.exited.then(() => started.stdout()) };
}

describe('sqlite store: durability and files', () => {
  it('opens WAL with synchronous=FULL by default, NORMAL on request', async () => {
    const full = getSqliteEventStore({ path: file() });
    assert.equal(full.database.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(full.database.pragma('synchronous', { simple: true }), 2); // FULL
    assert.ok((full.database.pragma('busy_timeout', { simple: true }) as number) >= 1000);
    await full.close();
    const normal = getSqliteEventStore({ path: file(), synchronous: 'normal' });
    assert.equal(normal.database.pragma('synchronous', { simple: true }), 1); // NORMAL
    await normal.close();
    assert.throws(() => getSqliteEventStore({ path: file(), synchronous: 'off' as never }), { code: 'VALIDATION' });
  });

  it('keeps events across close and reopen, and migrates once', async () => {
    const path = file();
    const first = getSqliteEventStore({ path });
    await first.append('order-1', [{ type: 'OrderPlaced', data: { total: 3 } }]);
    await first.close();
    const second = getSqliteEventStore({ path });
    assert.equal((await second.readStream('order-1')).events[0]?.type, 'OrderPlaced');
    const rows = second.database
      .prepare("SELECT version FROM factline_migrations WHERE component = 'event-store' ORDER BY version")
      .all() as { version: number }[];
    assert.deepEqual(
      rows.map((r) => r.version),
      [1, 2],
    );
    await second.close();
  });

  it('refuses a file whose schema is newer than this version knows', async () => {
    const path = file();
    await getSqliteEventStore({ path }).close();
    const db = new Sqlite(path);
    db.prepare("INSERT INTO factline_migrations VALUES ('event-store', 99, 'from the future', 0)").run();
    db.close();
    assert.throws(
      () => getSqliteEventStore({ path }),
      (e: Error & { code?: string }) => {
        return e.code === 'STORAGE' && /newer than this Factline knows/.test(e.message);
      },
    );
  });

  it('applies a component’s migrations in order, each once', () => {
    const db = new Sqlite(':memory:');
    const steps = [
      { version: 2, description: 'add b', up: 'ALTER TABLE t ADD COLUMN b TEXT' },
      { version: 1, description: 'create t', up: 'CREATE TABLE t (a TEXT)' },
    ];
    migrate(db, 'test', steps);
    migrate(db, 'test', steps);
    assert.deepEqual(
      db
        .prepare('PRAGMA table_info(t)')
        .all()
        .map((c) => (c as { name: string }).name),
      ['a', 'b'],
    );
    db.close();
  });

  it('a failing migration leaves nothing applied', () => {
    const db = new Sqlite(':memory:');
    assert.throws(() =>
      migrate(db, 'broken', [
        { version: 1, description: 'ok', up: 'CREATE TABLE good (a TEXT)' },
        { version: 2, description: 'bad', up: 'CREATE TABLE oops (' },
      ]),
    );
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE name IN ('good', 'factline_migrations')").all();
    assert.deepEqual(tables, []);
    db.close();
  });
});

describe('sqlite store: group commit', () => {
  it('commits concurrent appends together, yet each append gets its own contiguous versions', async () => {
    const store = getSqliteEventStore({ path: file() });
    await Promise.all(
      Array.from({ length: 16 }, async (_, w) => {
        for (let i = 0; i < 20; i++)
          await store.append(`writer-${w}`, [{ type: 'E', data: { i } }], { expectedVersion: i });
      }),
    );
    const stats = store.stats();
    assert.equal(stats.jobs, 320);
    assert.ok(stats.commits < 320 / 4, `expected batched commits, got ${stats.commits} for ${stats.jobs} appends`);
    assert.ok(stats.largestBatch >= 8);
    for (let w = 0; w < 16; w++) assert.equal((await store.readStream(`writer-${w}`)).version, 20);
    await store.close();
  });

  it('sequential appends still commit one by one and resolve in order', async () => {
    const store = getSqliteEventStore({ path: file() });
    for (let i = 0; i < 10; i++) await store.append('s-1', [{ type: 'E', data: { i } }], { expectedVersion: i });
    assert.equal(store.stats().commits, 10);
    await store.close();
  });
});

describe('sqlite store: several processes on one file', () => {
  it('two writer processes and a reader process alongside this one: no error, nothing lost', async () => {
    const path = file();
    const store = getSqliteEventStore({ path });
    await store.append('parent-0', [{ type: 'Start', data: {} }]);
    const writers = [
      startChild([path, 'write', 'childa', '150', '3']),
      startChild([path, 'write', 'childb', '150', '3']),
    ];
    const reader = startChild([path, 'read', '5']);
    for (let i = 0; i < 150; i++) await store.append(`parent-${i % 4}`, [{ type: 'ParentWrote', data: { i } }]);
    const outputs = await Promise.all([...writers, reader].map((c) => c.output));
    assert.deepEqual(JSON.parse(outputs[0] as string), { appended: 450 });
    assert.deepEqual(JSON.parse(outputs[1] as string), { appended: 450 });
    let count = 0;
    let previous = 0;
    for await (const event of store.readAll()) {
      assert.ok(event.position > previous);
      previous = event.position;
      count++;
    }
    assert.equal(count, 1 + 150 + 900);
    for (const prefix of ['childa', 'childb']) {
      for (let s = 0; s < 4; s++) {
        const { events } = await store.readStream(`${prefix}-${s}`);
        assert.deepEqual(
          events.map((e) => e.streamVersion),
          events.map((_, i) => i + 1),
        );
      }
    }
    await store.close();
  });

  it('kill -9 of a writing process leaves every append whole: all of its events or none', async () => {
    const path = file();
    const { child, stdout, output } = startChild([path, 'forever', 'victim']);
    await waitUntil(() => stdout().includes('ready'), 'child to start', 30_000);
    const probe = new Sqlite(path, { readonly: true });
    const count = () => (probe.prepare('SELECT COUNT(*) AS n FROM factline_events').get() as { n: number }).n;
    await waitUntil(() => count() >= 400, 'the child to write', 30_000);
    child.kill('SIGKILL');
    await output;
    probe.close();
    const store = getSqliteEventStore({ path });
    let total = 0;
    for (let s = 0; s < 4; s++) {
      const { events, version } = await store.readStream(`victim-${s}`);
      assert.equal(version % 5, 0, `stream victim-${s} holds a partial append (${version} events)`);
      assert.deepEqual(
        events.map((e) => e.streamVersion),
        events.map((_, i) => i + 1),
      );
      total += events.length;
    }
    assert.ok(total >= 400);
    assert.equal(
      (await store.append('victim-0', [{ type: 'After', data: {} }])).version,
      (await store.readStream('victim-0')).version,
    );
    await store.close();
  });
});
