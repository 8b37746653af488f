import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { testConsumerConformance } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { getSqliteDeadLetterStore, getSqliteInbox, getSqliteTransport, openSqliteDatabase } from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-consumer-'));
const path = join(dir, 'consumers.db');
const setup = openSqliteDatabase(path);
setup.exec(`CREATE TABLE test_effects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, consumer TEXT NOT NULL, value TEXT NOT NULL)`);
setup.close();

for (const groupCommit of [true, false]) {
  testConsumerConformance<Database>({
    name: `sqlite transport, inbox and dead letters in one file (${groupCommit ? 'group commit' : 'a commit per message'})`,
    transactional: true,
    synchronousHandlers: true,
    async createEnvironment() {
      const transport = getSqliteTransport({ path, pollIntervalMs: 20 });
      const db = transport.database;
      const insert = db.prepare('INSERT INTO test_effects (consumer, value) VALUES (?, ?)');
      const select = db.prepare<[string], { value: string }>(
        'SELECT value FROM test_effects WHERE consumer = ? ORDER BY seq',
      );
      return {
        transport,
        inbox: getSqliteInbox({ database: db, groupCommit }),
        deadLetters: getSqliteDeadLetterStore({ database: db }),
        writeEffect(tx, consumer, value) {
          insert.run(consumer, value);
          if (tx !== db) throw new Error('the handler should get the inbox connection');
        },
        effects: async (consumer) => select.all(consumer).map((row) => row.value),
        close: () => transport.close(),
      };
    },
  });
}

test('group commit: runs arriving together share one transaction; a failing run rolls back alone', async () => {
  const db = openSqliteDatabase(path);
  try {
    const inbox = getSqliteInbox({ database: db });
    const insert = db.prepare('INSERT INTO test_effects (consumer, value) VALUES (?, ?)');
    const ran: string[] = [];
    const settled: string[] = [];
    const run = (id: string, fail: boolean) =>
      (inbox.applyOnce as NonNullable<typeof inbox.applyOnce>)('group', id, new Date(), (tx) => {
        assert.equal(tx.inTransaction, true);
        insert.run('group', id);
        ran.push(id);
        if (fail) throw new TypeError(`${id} failed`);
      }).finally(() => settled.push(id));
    const results = await Promise.allSettled([run('a', false), run('b', true), run('c', false), run('a', false)]);
    assert.deepEqual(ran, ['a', 'b', 'c'], 'the second "a" is a duplicate within the group');
    assert.equal(settled.length, 4);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
      [true, 'b failed', true, false],
    );
    const rows = db.prepare("SELECT value FROM test_effects WHERE consumer = 'group' ORDER BY seq").all();
    assert.deepEqual(rows, [{ value: 'a' }, { value: 'c' }], "b's write rolled back with its savepoint");
    assert.equal(await inbox.has('group', 'b'), false, "b's mark rolled back too");
    await assert.rejects(
      (inbox.applyOnce as NonNullable<typeof inbox.applyOnce>)('group', 'd', new Date(), async () => undefined),
      { name: 'ValidationError' },
    );
    assert.equal(await inbox.has('group', 'd'), false, 'an async handler writes nothing');
  } finally {
    db.close();
  }
});

after(() => rmSync(dir, { recursive: true, force: true }));
