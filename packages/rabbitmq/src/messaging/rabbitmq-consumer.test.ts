import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { DeadLetterStore } from '@factline/core';
import { backendHooks, testConsumerConformance } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import {
  memoryInboxEnvironment,
  sqliteInboxEnvironment,
} from '../../../sqlite/src/messaging/fixtures/broker-consumer-environment.ts';
import { startPrivateNode } from '../fixtures/private-node.ts';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from '../fixtures/server.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

// The consumer pipeline on RabbitMQ with the SQLite inbox and dead-letter store: the handler's writes,
// the inbox mark and the dead letters in one file; the broker carries the messages. On a private node when
// this machine can start one (its restart and outage cases stop and start its broker), else on the shared
// broker without them.
const node = await startPrivateNode();
const privateUrl = 'reason' in node ? undefined : node.url;
if ('reason' in node) console.log(`# no private RabbitMQ node (${node.reason}): the restart and outage cases skip`);
const skip = privateUrl ? false : await rabbitUnavailable();
const dir = mkdtempSync(join(tmpdir(), 'factline-rabbit-consumer-'));
const path = join(dir, 'consumers.db');
const application = testApplication('consumer');
const created: RabbitTransport[] = [];
/** A transport whose default dead-letter store (and the broker's dead letters) is the SQLite one. */
const open = async (deadLetters: DeadLetterStore) => {
  const transport = await getRabbitTransport({
    url: privateUrl ?? amqpUrl,
    application,
    reconnectMaxMs: 500,
    partitions: 2,
    deadLetters,
  });
  created.push(transport);
  return transport;
};

after(async () => {
  if ('reason' in node) await removeTopology(created).catch(() => undefined);
  else await node.stop();
  rmSync(dir, { recursive: true, force: true });
});

testConsumerConformance<Database>({
  name: privateUrl
    ? 'rabbitmq transport (private node), SQLite inbox and dead letters'
    : 'rabbitmq transport, SQLite inbox and dead letters',
  transactional: true,
  synchronousHandlers: true,
  skip,
  ...('reason' in node ? {} : backendHooks(node.stopApp, node.startApp)),
  createEnvironment: sqliteInboxEnvironment(path, open),
});

// The cases of a running consumer whose handler is in flight when the broker goes away need handlers that
// await, which the SQLite inbox does not allow: the consumer's in-memory inbox, on the same private node.
testConsumerConformance({
  name: 'rabbitmq transport (private node), in-memory inbox',
  only: ['asyncHandlers', 'outage'],
  skip: privateUrl ? false : 'no private RabbitMQ node: the broker cannot be stopped under a running consumer',
  ...('reason' in node ? {} : backendHooks(node.stopApp, node.startApp)),
  createEnvironment: memoryInboxEnvironment(open),
});
