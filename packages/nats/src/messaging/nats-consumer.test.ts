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
import { showLogOnFailure, startPrivateServer } from '../fixtures/private-server.ts';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

// The consumer pipeline on NATS JetStream with the SQLite inbox and dead-letter store: the handler's writes,
// the inbox mark and the dead letters in one file; the server carries the messages. On a private server when
// this machine can start one (its restart case stops and starts it), else on the shared one without it.
const server = await startPrivateServer({ jetstream: true });
showLogOnFailure(server);
const privateUrl = 'reason' in server ? undefined : server.url;
if ('reason' in server) console.log(`# no private nats-server (${server.reason}): the restart case skips`);
const skip = privateUrl ? false : await natsUnavailable();
const dir = mkdtempSync(join(tmpdir(), 'factline-nats-consumer-'));
const path = join(dir, 'consumers.db');
const application = testApplication('consumer');
/** The transports the cases opened (a closed one reports itself not connected). */
const opened = new Set<NatsTransport>();
/** A transport whose default dead-letter store is the SQLite one. */
const open = async (deadLetters: DeadLetterStore) => {
  const transport = await getNatsTransport({
    url: privateUrl ?? natsUrl,
    application,
    partitions: 2,
    claimTtlMs: 1500,
    // The inbox case publishes one message twice on purpose: with the server's de-duplication (the default)
    // the second copy would never be stored, so nothing would reach the inbox to turn away.
    deduplicate: false,
    deadLetters,
  });
  opened.add(transport);
  return transport;
};

/**
 * Stops the server and waits until every transport has seen its connection go. An ack is a core publish with
 * no answer: one written in the instant between the server's exit and the client noticing it goes to a dead
 * socket unseen, and the delivery counts as settled (it comes again later: at least once). The cases of a
 * backend gone for good assert what happens once the client knows.
 */
const stopServerSeen = async (stop: () => Promise<void>) => {
  await stop();
  const deadline = Date.now() + 5000;
  while ([...opened].some((transport) => transport.connected())) {
    if (Date.now() > deadline) throw new Error('a transport did not see the server stop within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

after(async () => {
  if ('reason' in server) {
    if (!skip) await removeStreams([application]).catch(() => undefined);
  } else await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

testConsumerConformance<Database>({
  name: privateUrl
    ? 'nats transport (private server), SQLite inbox and dead letters'
    : 'nats transport, SQLite inbox and dead letters',
  transactional: true,
  synchronousHandlers: true,
  skip,
  ...('reason' in server ? {} : backendHooks(server.stopServer, server.startServer)),
  createEnvironment: sqliteInboxEnvironment(path, open),
});

// The cases of a running consumer whose handler is in flight when the server goes away need handlers that
// await, which the SQLite inbox does not allow: the consumer's in-memory inbox, on the same private server.
testConsumerConformance({
  name: 'nats transport (private server), in-memory inbox',
  only: ['asyncHandlers', 'outage'],
  skip: privateUrl ? false : 'no private nats-server: the server cannot be stopped under a running consumer',
  ...('reason' in server ? {} : backendHooks(() => stopServerSeen(server.stopServer), server.startServer)),
  createEnvironment: memoryInboxEnvironment(open),
});
