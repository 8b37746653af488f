import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createConsumer, createMessage, getInMemoryDeadLetterStore, isFactlineError } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { startPrivateServer } from '../fixtures/private-server.ts';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { topologyNames } from '../topology.ts';
import { getNatsTransport } from './nats-transport.ts';

// Every process of an application must give the same `partitions`: a key's partition is its hash modulo the
// count, so two counts send one key to two partitions (two readers, no order). The first declaration of a topic
// records its count in the `<app>_partitions` bucket; a transport given another is refused on declaring,
// subscribing and publishing, and writes nothing.
const skip = await natsUnavailable();
const application = testApplication('partitions');
const names = topologyNames(application);

after(async () => {
  if (!skip) await removeStreams([application]);
});

type Failure = Error & { retryable?: boolean };

async function withServer<T>(work: (jsm: JetStreamManager, counts: KV) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: natsUrl, timeout: 3000, reconnect: false });
  try {
    const counts = await new Kvm(jetstream(nc)).open(names.partitionCounts);
    return await work(await jetstreamManager(nc), counts);
  } finally {
    await nc.close();
  }
}

/** The recorded count of `topic` (the value under its key), or undefined. */
const recordedCount = (topic: string) =>
  withServer(async (_, counts) => (await counts.get(names.countKey(topic)))?.string());

/** The application's consumer names, its stream's last sequence and the streams (buckets) it has. */
const serverState = () =>
  withServer(async (jsm) => ({
    consumers: (await jsm.consumers.list(application).next()).map((c) => c.name).sort(),
    lastSeq: (await jsm.streams.info(application)).state.last_seq,
    // This file's only: other test files make and delete theirs meanwhile.
    streams: (await jsm.streams.names().next()).filter((s) => s.includes(application)).sort(),
  }));

const otherCount = (topic: string, key: string, recorded: number, given: number) => (error: Failure) => {
  assert.ok(isFactlineError(error), String(error));
  assert.equal(error.name, 'TransportError', error.message);
  assert.equal(error.retryable, false, error.message);
  assert.ok(
    error.message.startsWith(
      `topic '${topic}' has ${recorded} partitions in the NATS application '${application}' (${application}_partitions bucket, key ${key}), and this transport was given partitions: ${given}: every process of an application must use the same count`,
    ),
    error.message,
  );
  assert.match(error.message, new RegExp(`nats kv del ${application}_partitions ${key}\\b`));
  return true;
};

describe('nats: one partition count per topic', { skip }, () => {
  it('records the count at the first declaration; another count is refused for declaring, subscribing, consuming and publishing, and writes nothing', async () => {
    const reported: unknown[] = [];
    const four = await getNatsTransport({ url: natsUrl, application, partitions: 4 });
    const eight = await getNatsTransport({
      url: natsUrl,
      application,
      partitions: 8,
      onError: (error) => reported.push(error),
    });
    const alsoFour = await getNatsTransport({ url: natsUrl, application, partitions: 4 });
    try {
      await four.declareSubscription('orders', 'billing');
      assert.equal(await recordedCount('orders'), '4');
      const before = await serverState();
      assert.deepEqual(
        before.consumers,
        [0, 1, 2, 3].map((p) => names.consumer('orders', 'billing', p)),
      );
      assert.deepEqual(before.streams, [application, `KV_${application}_partitions`].sort());

      const refused = otherCount('orders', 'orders', 4, 8);
      await assert.rejects(eight.declareSubscription('orders', 'shipping'), refused);
      await assert.rejects(eight.declareSubscription('orders', 'shipping'), refused, 'refused again, not cached');
      await assert.rejects(eight.publish('orders', [createMessage({ type: 'A', key: 'k', data: {} })]), refused);
      const consumer = createConsumer({
        name: 'shipping',
        topic: 'orders',
        transport: eight,
        deadLetters: getInMemoryDeadLetterStore(),
        handler: () => undefined,
        onError: () => undefined,
      });
      await assert.rejects(consumer.start(), refused);
      await consumer.stop();
      // A subscription cannot reject: it reports the refusal, and claims and pulls nothing.
      const subscription = eight.subscribe('orders', 'audit');
      await waitUntil(() => reported.length > 0, 'the refused subscription reported');
      assert.ok(refused(reported[0] as Failure));
      await subscription.close();

      assert.deepEqual(await serverState(), before, 'no consumer, claim or message written');
      assert.equal(await recordedCount('orders'), '4');

      // The same count is welcome, and the count is per topic (its key: the subject token, `=` for `~`).
      await alsoFour.declareSubscription('orders', 'shipping');
      await alsoFour.publish('orders', [createMessage({ type: 'A', key: 'k', data: {} })]);
      assert.equal((await serverState()).lastSeq, before.lastSeq + 1);
      await eight.declareSubscription('payments', 'ledger');
      assert.equal(await recordedCount('payments'), '8');
      await eight.publish('eu.refunds', [createMessage({ type: 'A', key: 'k', data: {} })]);
      assert.equal(names.countKey('eu.refunds'), 'eu=2erefunds');
      assert.equal(await recordedCount('eu.refunds'), '8', 'a publish records the count too');
      await assert.rejects(
        four.declareSubscription('eu.refunds', 'billing'),
        otherCount('eu.refunds', 'eu=2erefunds', 8, 4),
      );
    } finally {
      await Promise.all([four.close(), eight.close(), alsoFour.close()]);
    }
  });

  it('refuses a recorded count that is not a positive integer; once the key is deleted, the next declaration records its own', async () => {
    const transport = await getNatsTransport({ url: natsUrl, application, partitions: 2 });
    try {
      await transport.declareSubscription('warmup', 'billing');
      await withServer((_, counts) => counts.put(names.countKey('broken'), 'four'));
      await assert.rejects(transport.declareSubscription('broken', 'billing'), (error: Failure) => {
        assert.ok(isFactlineError(error), String(error));
        assert.equal(error.retryable, false, error.message);
        assert.match(
          error.message,
          new RegExp(
            `^topic 'broken' has 'four' recorded as its partition count in the NATS application '${application}' \\(${application}_partitions bucket, key broken\\), not a positive integer`,
          ),
        );
        return true;
      });
      await withServer((_, counts) => counts.delete(names.countKey('broken')));
      await transport.declareSubscription('broken', 'billing');
      assert.equal(await recordedCount('broken'), '2');
    } finally {
      await transport.close();
    }
  });
});

const probe = await startPrivateServer({ jetstream: true });
const noPrivateServer = 'reason' in probe ? probe.reason : false;
if (!('reason' in probe)) await probe.stop();

describe('nats: partition count check without a server', { skip: noPrivateServer }, () => {
  it('is a retryable TransportError while the server is away, and checks again once it is back', async () => {
    const server = await startPrivateServer({ jetstream: true });
    if ('reason' in server) return;
    const transport = await getNatsTransport({
      url: server.url,
      application: testApplication('partitions_outage'),
      partitions: 2,
      onError: () => undefined,
    });
    try {
      await transport.declareSubscription('orders', 'billing');
      await server.stopServer();
      await assert.rejects(
        settlesWithin(transport.declareSubscription('payments', 'billing'), 20_000, 'the check while stopped'),
        (error: Failure) => {
          assert.ok(isFactlineError(error), String(error));
          assert.equal(error.name, 'TransportError', error.message);
          assert.equal(error.retryable, true, error.message);
          assert.match(error.message, /partition count of topic 'payments'/);
          return true;
        },
      );
      await server.startServer();
      await waitUntil(
        () =>
          transport.declareSubscription('payments', 'billing').then(
            () => true,
            () => false,
          ),
        'the check passes once the server is back',
        30_000,
      );
    } finally {
      await settlesWithin(transport.close(), 15_000, 'close');
      await server.stop();
    }
  });
});
