import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { DeadLetterStore } from '@factline/core';
import { testConsumerConformance } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { sqliteInboxEnvironment } from '../../../sqlite/src/messaging/fixtures/broker-consumer-environment.ts';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

// The consumer pipeline on RabbitMQ with the SQLite inbox and dead-letter store: the handler's writes,
// the inbox mark and the dead letters in one file; the broker carries the messages.
const skip = await rabbitUnavailable();
const dir = mkdtempSync(join(tmpdir(), 'factline-rabbit-consumer-'));
const path = join(dir, 'consumers.db');
const application = testApplication('consumer');
const created: RabbitTransport[] = [];
/** A transport whose default dead-letter store (and the broker's dead letters) is the SQLite one. */
const open = async (deadLetters: DeadLetterStore) => {
  const transport = await getRabbitTransport({
    url: amqpUrl,
    application,
    partitions: 2,
    deadLetters,
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
  createEnvironment: sqliteInboxEnvironment(path, open),
});
