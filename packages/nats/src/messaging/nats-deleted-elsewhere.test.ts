import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, NoSubscriptionError, TransportError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { showLogOnFailure, startPrivateServer } from '../fixtures/private-server.ts';
import { natsUnavailable, natsUrl, openManager, testApplication } from '../fixtures/server.ts';
import type { NatsTransportOptions } from '../options.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const never = new AbortController().signal;
const job = (n: number) => createMessage({ type: 'Job', key: `j${n}`, data: { n } });

/**
 * Transports of one application of their own (one partition), as processes of it, and a manager to look on
 * (or delete with, as an operator). `tearDown` closes what it opened and removes the application.
 */
async function setUp(label: string, url = natsUrl, auth: { user?: string; pass?: string } = {}) {
  const application = testApplication(label);
  const nc = await connect({ servers: url, timeout: 3000, reconnect: false, ...auth });
  const jsm = await jetstreamManager(nc);
  const close = () => nc.close();
  const opened: NatsTransport[] = [];
  return {
    application,
    jsm,
    async open(options: Partial<NatsTransportOptions> = {}) {
      const transport = await getNatsTransport({
        url: auth.user ? url.replace('nats://', `nats://${auth.user}:${auth.pass}@`) : url,
        application,
        partitions: 1,
        claimTtlMs: 600,
        onError: () => undefined,
        ...options,
      });
      opened.push(transport);
      return transport;
    },
    async tearDown() {
      await Promise.all(opened.map((transport) => transport.close()));
      for (const name of [application, `KV_${application}_claims`, `KV_${application}_partitions`]) {
        await jsm.streams.delete(name).catch(() => undefined);
      }
      await close();
    },
  };
}

describe('nats: the stream deleted and made again by another process', { skip, timeout: 60_000 }, () => {
  it('a publish with requireSubscription counts on no consumer seen in the deleted stream: NoSubscriptionError', async () => {
    const t = await setUp('elsewhere_required');
    try {
      // Another process declared the group once; this one saw its consumer with a publish that required it.
      const declaring = await t.open();
      await declaring.declareSubscription('jobs', 'worker');
      await declaring.close();
      const publisher = await t.open();
      const other = await t.open();
      await publisher.publish('jobs', [job(1)], { requireSubscription: true });

      // Deleted, and made again first by a process that declares nothing for the topic: no consumer of it.
      await t.jsm.streams.delete(t.application);
      await other.publish('other', [job(2)]);

      await assert.rejects(
        publisher.publish('jobs', [job(3)], { requireSubscription: true }),
        (error: unknown) => error instanceof NoSubscriptionError,
        'stored where no consumer takes it, the message would be dropped and the call resolved',
      );
    } finally {
      await t.tearDown();
    }
  });

  it('a reader whose held messages went with the stream refuses their acks once another process made it again, and delivers the new one', async () => {
    const t = await setUp('elsewhere_acks');
    try {
      const reader = await t.open({ prefetch: 2 });
      // Declares the group too: making the stream again, it adds the group's consumer at once.
      const other = await t.open();
      await other.declareSubscription('jobs', 'worker');
      await reader.declareSubscription('jobs', 'worker');
      const subscription = reader.subscribe('jobs', 'worker');
      await reader.publish('jobs', [job(1), job(2)]);
      const held = [];
      while (held.length < 2) held.push(...(await subscription.receive(2 - held.length, 10_000, never)));
      // The reader holds its prefetch: it pulls nothing (and so does not see the deletion) until one is settled.
      await t.jsm.streams.delete(t.application);
      await other.publish('jobs', [job(3)]);

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
});

describe('nats: the claim bucket deleted while processes run', { skip, timeout: 60_000 }, () => {
  for (const counts of [false, true]) {
    const deleted = counts ? 'with the partition count bucket' : 'alone';
    it(`deleted ${deleted}: a process starting after the deletion makes it again no sooner than claimTtlMs after, never claiming a partition still held`, async () => {
      const t = await setUp(counts ? 'elsewhere_claims_counts' : 'elsewhere_claims');
      const bucket = `KV_${t.application}_claims`;
      const ttlMs = 1500;
      try {
        const running = await t.open({ claimTtlMs: ttlMs });
        const runningSubscription = running.subscribe('jobs', 'worker');
        await waitUntil(
          () => running.heldPartitions('jobs', 'worker').length === 1,
          'the partition claimed',
          10_000,
          20,
        );

        await t.jsm.streams.delete(bucket);
        // The count bucket too: the one the new process makes says nothing of the claim bucket, but the stream's
        // consumers say groups ran.
        if (counts) await t.jsm.streams.delete(`KV_${t.application}_partitions`);
        const deletedAt = Date.now();
        // A new process of the application: the first to open the claim bucket finds it missing.
        const starting = await t.open({ claimTtlMs: ttlMs });
        const startingSubscription = starting.subscribe('jobs', 'worker');
        let both = 0;
        let madeAt: number | undefined;
        await waitUntil(
          async () => {
            const held = [running, starting].filter(
              (transport) => transport.heldPartitions('jobs', 'worker').length > 0,
            );
            if (held.length > 1) both += 1;
            madeAt ??= await t.jsm.streams.info(bucket).then(
              (info) => Date.parse(info.created),
              () => undefined,
            );
            return madeAt !== undefined && held.length === 1;
          },
          'the claim bucket made again and the partition claimed anew',
          15_000,
          10,
        );
        assert.equal(both, 0, 'the partition was held by two processes at once');
        // The server's clock is this machine's.
        const madeAfter = (madeAt ?? 0) - deletedAt;
        assert.ok(madeAfter >= ttlMs - 50, `made again ${madeAfter} ms after its deletion (claimTtlMs ${ttlMs})`);
        await runningSubscription.close();
        await startingSubscription.close();
      } finally {
        await t.tearDown();
      }
    });
  }

  it("a new application's first subscriber makes the claim bucket at once, without waiting claimTtlMs", async () => {
    const t = await setUp('elsewhere_claims_new');
    try {
      const publisher = await t.open({ claimTtlMs: 60_000 });
      await publisher.declareSubscription('jobs', 'worker');
      const consumer = await t.open({ claimTtlMs: 60_000 });
      const subscription = consumer.subscribe('jobs', 'worker');
      await publisher.publish('jobs', [job(1)]);
      const [got] = await subscription.receive(1, 10_000, never);
      assert.deepEqual(got?.message.data, { n: 1 });
      await got?.ack();
      await subscription.close();
    } finally {
      await t.tearDown();
    }
  });
});

describe('nats: a publish with requireSubscription, a consumer deleted at the server', {
  skip,
  timeout: 60_000,
}, () => {
  it('the next publish reads the consumers again: NoSubscriptionError when none of the topic is left', async () => {
    const t = await setUp('elsewhere_consumer');
    try {
      const transport = await t.open();
      await transport.declareSubscription('jobs', 'worker');
      await transport.publish('jobs', [job(1)], { requireSubscription: true });
      await t.jsm.consumers.delete(t.application, 'jobs~~worker~~0');
      await assert.rejects(
        transport.publish('jobs', [job(2)], { requireSubscription: true }),
        (error: unknown) => error instanceof NoSubscriptionError,
      );
    } finally {
      await t.tearDown();
    }
  });
});

// A server whose user may not subscribe to the JetStream advisories.
const restricted = skip
  ? { reason: skip }
  : await startPrivateServer({
      jetstream: true,
      user: 'app',
      pass: 'secret',
      config: `authorization { users = [ { user: "app", password: "secret", permissions: { publish: ">", subscribe: { allow: ">", deny: "$JS.EVENT.>" } } } ] }`,
    });
showLogOnFailure(restricted);
after(async () => {
  if (!('reason' in restricted)) await restricted.stop();
});

describe('nats: a server refusing the stream advisories', {
  skip: 'reason' in restricted && restricted.reason,
  timeout: 60_000,
}, () => {
  it('is told once (topology); a publish with requireSubscription reads the consumers every time', async () => {
    if ('reason' in restricted) return;
    const t = await setUp('refused_advisories', restricted.url, { user: 'app', pass: 'secret' });
    const told: string[] = [];
    try {
      const transport = await t.open({ onError: (error, { stage }) => told.push(`${stage}: ${String(error)}`) });
      assert.equal(told.length, 1, told.join('\n'));
      assert.match(told[0] ?? '', /^topology: .*refused the subscriptions to the advisories/);
      await transport.declareSubscription('jobs', 'worker');
      await transport.publish('jobs', [job(1)], { requireSubscription: true });
      await t.jsm.consumers.delete(t.application, 'jobs~~worker~~0');
      await assert.rejects(
        transport.publish('jobs', [job(2)], { requireSubscription: true }),
        (error: unknown) => error instanceof NoSubscriptionError,
      );
    } finally {
      await t.tearDown();
    }
  });
});

// A server to restart: what happens while the transport is away from it is told by no advisory.
const restarting = skip ? { reason: skip } : await startPrivateServer({ jetstream: true });
showLogOnFailure(restarting);
after(async () => {
  if (!('reason' in restarting)) await restarting.stop();
});

describe('nats: the stream deleted and made again while the transport is disconnected', {
  skip: 'reason' in restarting && restarting.reason,
  timeout: 60_000,
}, () => {
  it('at the reconnection the stream is found another (told: topology): the held acks are refused', async () => {
    if ('reason' in restarting) return;
    const t = await setUp('reconnect_replaced', restarting.url);
    const told: string[] = [];
    try {
      const reader = await t.open({
        prefetch: 2,
        reconnectWaitMs: 3000,
        // Its claim outlives the outage: the partition stays this process's.
        claimTtlMs: 30_000,
        onError: (error, { stage }) => told.push(`${stage}: ${String(error)}`),
      });
      await reader.declareSubscription('jobs', 'worker');
      const subscription = reader.subscribe('jobs', 'worker');
      await reader.publish('jobs', [job(1), job(2)]);
      const held = [];
      while (held.length < 2) held.push(...(await subscription.receive(2 - held.length, 10_000, never)));
      const { config } = await t.jsm.streams.info(t.application);
      const consumer = await t.jsm.consumers.info(t.application, 'jobs~~worker~~0');

      // The server restarts; before the transport is back (it waits 3 s between tries), the stream and its
      // consumer are deleted and made again as they were.
      await restarting.stopServer();
      await waitUntil(() => !reader.connected(), 'the transport disconnected', 10_000, 20);
      await restarting.startServer();
      const { jsm, close } = await openManager(restarting.url);
      try {
        await jsm.streams.delete(t.application);
        await jsm.streams.add(config);
        await jsm.consumers.add(t.application, consumer.config);
      } finally {
        await close();
      }
      await waitUntil(
        () => told.some((line) => /^topology: .*made again .*unseen/.test(line)),
        'the stream found another',
        15_000,
        20,
      );

      for (const delivery of held) {
        await assert.rejects(
          delivery.ack(),
          (error: unknown) => error instanceof TransportError && /was deleted there/.test(error.message),
          'acked by its stream sequence, it would settle the new stream’s message of that number',
        );
      }
      await subscription.close();
    } finally {
      await t.tearDown();
    }
  });
});
