import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testConsumerConformance } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { getSqliteDeadLetterStore, getSqliteInbox, getSqliteTransport, openSqliteDatabase } from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-consumer-'));
const path = join(dir, 'consumers.db');
const setup = openSqliteDatabase(path);
setup.exec(`CREATE TABLE test_effects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, consumer TEXT NOT NULL, value TEXT NOT NULL)`);
setup.close();

testConsumerConformance<Database>({
  name: 'sqlite transport, inbox and dead letters in one file',
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
      inbox: getSqliteInbox({ database: db }),
      deadLetters: getSqliteDeadLetterStore({ database: db }),
      writeEffect(tx, consumer, value) {
        insert.run(consumer, value);
        if (tx !== db) throw new Error('the handler should get the inbox connection');
      },
      effects: async (consumer) => select.all(consumer).map((row) => row.value),
      close: () => transport.close(),
    };
  },
  teardown: () => rmSync(dir, { recursive: true, force: true }),
});
