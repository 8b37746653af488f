import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { testConsumerConformance } from '@factline/core/testing';
import { getSqliteDeadLetterStore, getSqliteInbox, openSqliteDatabase } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

// The consumer pipeline on RabbitMQ with the SQLite inbox and dead-letter store: the handler's writes,
// the inbox mark and the dead letters in one file; the broker carries the messages.
const skip = await rabbitUnavailable();
const dir = mkdtempSync(join(tmpdir(), 'factline-rabbit-consumer-'));
const path = join(dir, 'consumers.db');
const setup = openSqliteDatabase(path);
setup.exec(`CREATE TABLE test_effects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, consumer TEXT NOT NULL, value TEXT NOT NULL)`);
setup.close();
const application = testApplication('consumer');
const created: RabbitTransport[] = [];
/** A transport whose default dead-letter store (and the broker's dead letters) is the SQLite one in `db`. */
const open = async (db: Database) => {
  const transport = await getRabbitTransport({
    url: amqpUrl,
    application,
    partitions: 2,
    deadLetters: getSqliteDeadLetterStore({ database: db }),
  });
  created.push(transport);
  return transport;
};

after(async () => {
  await removeTopology(created).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

testConsumerConformance<Database>({
  name: 'rabbitmq transport, SQLite inbox and dead letters',
  transactional: true,
  synchronousHandlers: true,
  skip,
  async createEnvironment() {
    const db = openSqliteDatabase(path);
    const transport = await open(db);
    const select = db.prepare<[string], { value: string }>(
      'SELECT value FROM test_effects WHERE consumer = ? ORDER BY seq',
    );
    return {
      transport,
      inbox: getSqliteInbox({ database: db }),
      deadLetters: getSqliteDeadLetterStore({ database: db }),
      writeEffect(tx, consumer, value) {
        tx.prepare('INSERT INTO test_effects (consumer, value) VALUES (?, ?)').run(consumer, value);
      },
      effects: async (consumer) => select.all(consumer).map((row) => row.value),
      // A connection of its own, as another process has.
      peerTransport: () => open(db),
      close: async () => {
        await transport.close();
        db.close();
      },
    };
  },
});
