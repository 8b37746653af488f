import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage, TransportError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { natsUnavailable, natsUrl, openManager, removeStreams, testApplication } from '../fixtures/server.ts';
import type { NatsErrorStage, NatsTransportOptions } from '../options.ts';
import { topologyNames } from '../topology.ts';
import { getNatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const never = new AbortController().signal;
const job = (n: number) => createMessage({ type: 'Job', key: 'j', data: { n } });

/** A transport on an application of its own (one partition), what it told `onError`, and a manager to look on. */
async function setUp(label: string, options: Partial<NatsTransportOptions> = {}) {
  const application = testApplication(label);
  const told: { stage: NatsErrorStage; message: string; at: number }[] = [];
  const { jsm, close } = await openManager();
  const transport = await getNatsTransport({
    url: natsUrl,
    application,
    partitions: 1,
    claimTtlMs: 600,
    onError: (error, { stage }) => told.push({ stage, message: String(error), at: performance.now() }),
    ...options,
  });
  const consumerName = topologyNames(application).consumer('jobs', 'worker', 0);
  return {
    application,
    told,
    jsm,
    transport,
    consumerName,
    streamExists: (name: string) =>
      jsm.streams.info(name).then(
        () => true,
        () => false,
      ),
    consumerExists: () =>
      jsm.consumers.info(application, consumerName).then(
        () => true,
        () => false,
      ),
    async tearDown() {
      await transport.close();
      await close();
      await removeStreams([application]);
    },
  };
}

describe('nats: the stream deleted at the server while the transport runs', { skip, timeout: 60_000 }, () => {
  it('a running subscription makes it again (reported: consume, topology), and later messages are delivered', async () => {
    const t = await setUp('deleted_reader');
    try {
      await t.transport.declareSubscription('jobs', 'worker');
      const subscription = t.transport.subscribe('jobs', 'worker');
      await t.transport.publish('jobs', [job(1)]);
      const [first] = await subscription.receive(1, 10_000, never);
      assert.deepEqual(first?.message.data, { n: 1 });

      // Held, not acknowledged, as the stream goes: the stream made again numbers its messages from 1 again.
      await t.jsm.streams.delete(t.application);
      await waitUntil(
        () =>
          t.jsm.streams.info(t.application).then(
            () => true,
            () => false,
          ),
        'the stream made again by the reader',
        10_000,
        50,
      );
      // Told once the making answered, which may come after the stream is there to be seen.
      const told = await waitUntil(() => t.told.find((e) => e.stage === 'topology'), 'the making told', 10_000, 10);
      assert.match(told.message, /was missing at the server.*made again/);
      assert.ok(
        t.told.some((e) => e.stage === 'consume' && /pulling jobs\/worker partition 0 failed/.test(e.message)),
        'the failed pull was reported',
      );
      const { config } = await t.jsm.streams.info(t.application);
      assert.deepEqual(
        [config.subjects, config.retention, config.storage],
        [[`${t.application}.>`], 'interest', 'file'],
      );

      await t.transport.publish('jobs', [job(2)]);
      const [second] = await subscription.receive(1, 10_000, never);
      assert.deepEqual(second?.message.data, { n: 2 }, 'the message published after the deletion');
      await second?.ack();
      // The message of the deleted stream can be acknowledged no more: refused (it is not counted handled).
      await assert.rejects(
        first?.ack() ?? Promise.resolve(),
        (error: unknown) => error instanceof TransportError && /was deleted there/.test(error.message),
      );
      await subscription.close();
    } finally {
      await t.tearDown();
    }
  });

  it('a reader holding its prefetch, the stream made again by a publish of its own process: the held acks are refused', async () => {
    const t = await setUp('deleted_idle_reader', { prefetch: 2 });
    try {
      await t.transport.declareSubscription('jobs', 'worker');
      const subscription = t.transport.subscribe('jobs', 'worker');
      await t.transport.publish('jobs', [job(1), job(2)]);
      const held = [];
      while (held.length < 2) held.push(...(await subscription.receive(2 - held.length, 10_000, never)));
      // Holding its prefetch, the reader pulls nothing: the publish finds the stream missing first.
      await t.jsm.streams.delete(t.application);
      await t.transport.publish('jobs', [job(3)]);

      for (const delivery of held) {
        await assert.rejects(
          delivery.ack(),
          (error: unknown) => error instanceof TransportError && /was deleted there/.test(error.message),
          'acked by its stream sequence, it would settle the new stream’s message of that number',
        );
      }
      const [next] = await subscription.receive(1, 10_000, never);
      assert.deepEqual(next?.message.data, { n: 3 }, 'the message published after the deletion');
      await next?.ack();
      await subscription.close();
    } finally {
      await t.tearDown();
    }
  });

  it('a publish makes it again with the declared consumers before it sends again: the message is kept and delivered', async () => {
    const t = await setUp('deleted_publish');
    try {
      // Declared, no reader: only the publish can find the stream missing.
      await t.transport.declareSubscription('jobs', 'worker');
      await t.jsm.streams.delete(t.application);

      await t.transport.publish('jobs', [job(1)], { requireSubscription: true });
      assert.equal(t.told.filter((e) => e.stage === 'topology').length, 1, 'the stream made again, reported once');
      assert.equal(await t.consumerExists(), true, 'the declared consumer made again');
      const { state } = await t.jsm.streams.info(t.application);
      assert.equal(state.messages, 1, 'stored (a stream of interest retention drops what no consumer takes)');

      const subscription = t.transport.subscribe('jobs', 'worker');
      const [got] = await subscription.receive(1, 10_000, never);
      assert.deepEqual(got?.message.data, { n: 1 });
      await got?.ack();
      await subscription.close();
    } finally {
      await t.tearDown();
    }
  });

  it('a stream an operator made again with a configuration of their own is used as it is, never changed', async () => {
    const t = await setUp('deleted_replaced');
    try {
      await t.transport.declareSubscription('jobs', 'worker');
      await t.jsm.streams.delete(t.application);
      await t.jsm.streams.add({
        name: t.application,
        subjects: [`${t.application}.>`],
        retention: 'limits',
        storage: 'memory',
        max_msgs: 1000,
      });

      await t.transport.declareSubscription('jobs', 'worker');
      const subscription = t.transport.subscribe('jobs', 'worker');
      await t.transport.publish('jobs', [job(1)]);
      const [got] = await subscription.receive(1, 10_000, never);
      assert.deepEqual(got?.message.data, { n: 1 });
      await got?.ack();
      await subscription.close();

      const { config } = await t.jsm.streams.info(t.application);
      assert.deepEqual([config.retention, config.storage, config.max_msgs], ['limits', 'memory', 1000]);
      // The process made nothing. (Where the deletion's advisory comes late, it may tell that the stream was made
      // again unseen: true, and harmless here.)
      assert.deepEqual(
        t.told.filter((e) => e.stage === 'topology' && !/made again \(at .*\) unseen by this process/.test(e.message)),
        [],
      );
    } finally {
      await t.tearDown();
    }
  });
});

describe('nats: a key-value bucket deleted at the server while the transport runs', { skip, timeout: 60_000 }, () => {
  it('the claim bucket is made again claimTtlMs after it was found missing (told: claim, topology), the partition claimed anew', async () => {
    const t = await setUp('deleted_claims');
    const bucket = `KV_${t.application}_claims`;
    try {
      await t.transport.declareSubscription('jobs', 'worker');
      const subscription = t.transport.subscribe('jobs', 'worker');
      await t.transport.publish('jobs', [job(1)]);
      const [first] = await subscription.receive(1, 10_000, never);
      await first?.ack();

      await t.jsm.streams.delete(bucket);
      const deletedAt = performance.now();
      await waitUntil(() => t.streamExists(bucket), 'the claim bucket made again', 10_000, 20);
      // Not before every process could have given its claims up (claimTtlMs: 600).
      const after = Math.round(performance.now() - deletedAt);
      assert.ok(after >= 600, `made again ${after} ms after its deletion`);
      assert.ok(
        t.told.some((e) => e.stage === 'claim'),
        'the failed claim round told',
      );
      assert.match(
        t.told.find((e) => e.stage === 'topology')?.message ?? '',
        /claim bucket .* was missing at the server/,
      );
      await waitUntil(() => t.transport.heldPartitions('jobs', 'worker').length === 1, 'the partition claimed anew');

      await t.transport.publish('jobs', [job(2)]);
      const [second] = await subscription.receive(1, 10_000, never);
      assert.deepEqual(second?.message.data, { n: 2 });
      await second?.ack();
      await subscription.close();
    } finally {
      await t.tearDown();
    }
  });

  it('the partition count bucket is made again by the next check (told: topology), and the counts recorded again', async () => {
    const t = await setUp('deleted_counts');
    const bucket = `KV_${t.application}_partitions`;
    const recorded = (topic: string) =>
      t.jsm.streams
        .getMessage(bucket, { last_by_subj: `$KV.${t.application}_partitions.${topic}` })
        .then((stored) => stored?.string())
        .catch(() => undefined);
    try {
      await t.transport.declareSubscription('jobs', 'worker');
      await t.jsm.streams.delete(bucket);

      // A topic not checked yet finds the bucket missing.
      await t.transport.declareSubscription('other', 'worker');
      assert.equal(t.told.filter((e) => e.stage === 'topology').length, 1, 'told once');
      assert.match(t.told.find((e) => e.stage === 'topology')?.message ?? '', /partition count bucket .* was missing/);
      assert.equal(await recorded('other'), '1');
      // A topic checked before the deletion records its count again at its next use.
      await t.transport.publish('jobs', [job(1)]);
      assert.equal(await recorded('jobs'), '1');
      // Made again, it says the claim bucket was made (it may have been): one found missing later is waited out.
      assert.equal(await recorded('claims.made'), '1');
    } finally {
      await t.tearDown();
    }
  });
});
