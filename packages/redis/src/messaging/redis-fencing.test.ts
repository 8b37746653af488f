import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConsumer, createMessage, type Delivery } from '@factline/core';
import { settledWithin } from '@factline/core/adapter';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { redisKeys } from '../keys.ts';
import { getRedisInbox } from './redis-inbox.ts';
import { getRedisTransport } from './redis-transport.ts';

const { skip, application, client } = await sharedRedis('fencing');

const pending = async (stream: string, group: string) =>
  Number(((await client.sendCommand(['XPENDING', stream, group])) as [number])[0]);

// A reader whose event loop stalled past its lease is played by taking its lease key away from it (as the
// partition's next holder would once the lease expired) while it holds a delivery; then it settles the delivery.
// Leases last a minute here, so no renewal runs during a case.
/**
 * A transport on one partition, leases of a minute and trims a minute apart (its rounds 20 s apart: no renewal
 * runs during a case), telling `errors` what fails.
 */
const openTold = (errors: string[]) =>
  getRedisTransport({
    url: redisUrl,
    application,
    partitions: 1,
    leaseMs: 60_000,
    trimIntervalMs: 60_000,
    onError: (error, { stage }) => errors.push(`${stage}: ${(error as Error).message}`),
  });

/**
 * Two transports on one partition of `topic`: the first reads a message, the second takes its lease key, then the
 * first settles the delivery with `settle`. The first must let the partition go having acked nothing (`checks`
 * looks at more), and the second get the entry, handed out a second time, and ack it.
 */
async function settledAfterTheLeaseMoved(
  topic: string,
  settle: (delivery: Delivery) => Promise<void>,
  checks: () => Promise<void> = async () => undefined,
  { ranOut = false }: { ranOut?: boolean } = {},
) {
  const errors: string[] = [];
  const open = () => openTold(errors);
  const stale = await open();
  const next = await open();
  const signal = new AbortController().signal;
  try {
    const a = stale.subscribe(topic, 'billing');
    await stale.publish(topic, [createMessage({ type: 'A', key: 'k', data: { n: 1 } })]);
    const [delivery] = await a.receive(1, 5000, signal);
    assert.ok(delivery, 'the first reader got the message');
    const lease = stale.keys.lease(topic, 'billing', 0);
    // Ran out: the lease key gone, as once its expiry passed before another reader took it.
    if (ranOut) await client.sendCommand(['DEL', lease]);
    else await client.sendCommand(['SET', lease, `${next.consumerName}-1`, 'PX', '60000']);
    await settle(delivery);
    const stream = stale.keys.stream(topic, 0);
    await waitUntil(() => stale.heldPartitions(topic, 'billing').length === 0, 'the stale reader to let go', 5000);
    assert.equal(await pending(stream, 'billing'), 1, 'the entry is still pending: not acked by the stale reader');
    // The holder the script found is told: none, when the lease ran out (not another reader that does not exist).
    const why = ranOut ? 'the lease ran out (no holder; found at' : 'another reader holds it (found at';
    assert.ok(
      errors.some((e) => e.startsWith(`lease: lost the lease of ${topic}/billing partition 0: ${why}`)),
      errors.join('\n'),
    );
    await checks();
    const b = next.subscribe(topic, 'billing');
    const again: Delivery[] = [];
    await waitUntil(
      async () => {
        again.push(...(await b.receive(1, 100, signal)));
        return again.length === 1;
      },
      'the new holder to get the entry',
      10_000,
    );
    assert.equal(again[0]?.message.id, delivery.message.id);
    assert.equal(again[0]?.deliveryCount, 2);
    await again[0]?.ack();
    assert.equal(await pending(stream, 'billing'), 0, 'acked by the new holder');
    await a.close();
    await b.close();
  } finally {
    await stale.close();
    await next.close();
  }
}

// A reader whose event loop stalled past its lease is played by taking its lease key away from it (as the
// partition's next holder would once the lease expired) while it holds a delivery; then it settles the delivery.
// Leases last a minute here, so no renewal runs during a case.
describe('redis: the partition lease fences off a reader that lost it', { skip }, () => {
  it('an ack after the lease moved acks nothing: the reader lets the partition go, the new holder gets the entry', async () => {
    await settledAfterTheLeaseMoved('acks', (delivery) => delivery.ack());
  });

  it('a delayed release after the lease moved acks and schedules nothing: the reader lets the partition go, the new holder gets the entry', async () => {
    // A minute: no copy could be due during the case.
    await settledAfterTheLeaseMoved(
      'releases',
      (delivery) => delivery.release(60_000),
      async () => {
        assert.equal(
          Number(await client.sendCommand(['ZCARD', redisKeys(application).delayed])),
          0,
          'no copy scheduled',
        );
      },
    );
  });

  it('an ack after the lease ran out (no holder) acks nothing and says the lease ran out, not that another reader holds it', async () => {
    await settledAfterTheLeaseMoved('acks-ran-out', (delivery) => delivery.ack(), undefined, { ranOut: true });
  });

  it('a delayed release after the lease ran out (no holder) acks and schedules nothing and says the lease ran out', async () => {
    await settledAfterTheLeaseMoved('releases-ran-out', (delivery) => delivery.release(60_000), undefined, {
      ranOut: true,
    });
  });

  for (const ranOut of [false, true]) {
    it(`a renewal that finds the lease ${ranOut ? 'with no holder' : 'with another holder'} says ${ranOut ? 'it ran out' : 'another reader holds it'}`, async () => {
      const topic = ranOut ? 'renewal-ran-out' : 'renewal-moved';
      const errors: string[] = [];
      // Rounds every 100 ms: the renewal comes soon after the lease is taken away.
      const transport = await getRedisTransport({
        url: redisUrl,
        application,
        partitions: 1,
        leaseMs: 300,
        onError: (error, { stage }) => errors.push(`${stage}: ${(error as Error).message}`),
      });
      try {
        const subscription = transport.subscribe(topic, 'billing');
        await waitUntil(() => transport.heldPartitions(topic, 'billing').length === 1, 'the reader to hold it');
        const lease = transport.keys.lease(topic, 'billing', 0);
        if (ranOut) await client.sendCommand(['DEL', lease]);
        else await client.sendCommand(['SET', lease, 'another-reader', 'PX', '60000']);
        const why = ranOut ? 'the lease ran out (no holder)' : 'another reader holds it';
        await waitUntil(
          () => errors.includes(`lease: lost the lease of ${topic}/billing partition 0: ${why}`),
          `the renewal to tell: ${why}`,
          5000,
        );
        await client.sendCommand(['DEL', lease]);
        await subscription.close();
      } finally {
        await transport.close();
      }
    });
  }

  for (const ranOut of [false, true]) {
    it(`with the Redis inbox, a run that finishes after the lease ${ranOut ? 'ran out (no holder)' : 'moved'} writes neither mark nor ack; the next holder applies the message`, async () => {
      const topic = ranOut ? 'inboxed-ran-out' : 'inboxed';
      const errors: string[] = [];
      const open = () => openTold(errors);
      const stale = await open();
      const next = await open();
      const inbox = await getRedisInbox({ url: redisUrl, application });
      const runs: string[] = [];
      const lease = stale.keys.lease(topic, 'billing', 0);
      const consumerOn = (transport: typeof stale, name: string) =>
        createConsumer({
          name: 'billing',
          topic,
          transport,
          inbox,
          async handler() {
            runs.push(name);
            // The stale reader's run: its partition moves to the next reader (or its lease runs out) while the
            // handler runs.
            if (name !== 'stale') return;
            if (ranOut) await client.sendCommand(['DEL', lease]);
            else await client.sendCommand(['SET', lease, `${next.consumerName}-1`, 'PX', '60000']);
          },
        });
      const first = consumerOn(stale, 'stale');
      const second = consumerOn(next, 'next');
      try {
        await first.start();
        await waitUntil(
          () => stale.heldPartitions(topic, 'billing').length === 1,
          'the first reader to hold the partition',
        );
        const message = createMessage({ type: 'A', key: 'k', data: {} });
        await stale.publish(topic, [message]);
        await waitUntil(
          () => runs.length === 1 && stale.heldPartitions(topic, 'billing').length === 0,
          'the stale run to end and its reader to let go',
        );
        assert.deepEqual(runs, ['stale']);
        assert.equal(await inbox.has('billing', message.id), false, 'no mark: the run finished after the lease moved');
        const stream = stale.keys.stream(topic, 0);
        assert.equal(await pending(stream, 'billing'), 1, 'no ack either');
        const why = ranOut
          ? 'the lease ran out (no holder; found at an ack)'
          : 'another reader holds it (found at an ack)';
        assert.ok(errors.includes(`lease: lost the lease of ${topic}/billing partition 0: ${why}`), errors.join('\n'));
        await second.start();
        await waitUntil(
          async () => (await pending(stream, 'billing')) === 0,
          'the new holder to apply and ack',
          10_000,
        );
        assert.deepEqual(runs, ['stale', 'next'], 'the new holder ran it (its claim was not blocked by the stale run)');
        assert.equal(await inbox.has('billing', message.id), true);
      } finally {
        await first.stop();
        await second.stop();
        await stale.close();
        await next.close();
        await inbox.close();
      }
    });
  }
});

describe('redis: a transport closed while a handler holds a delivery', { skip }, () => {
  it('waits for that delivery to be settled before handing its partition back, so the ack still counts', async () => {
    // Closed before its consumer stopped: handed back at once, the entry went to another process while the handler
    // still ran, and the handler's ack was fenced off.
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    const signal = new AbortController().signal;
    const subscription = transport.subscribe('closing', 'billing');
    await transport.publish('closing', [createMessage({ type: 'A', key: 'k', data: { n: 1 } })]);
    const [delivery] = await subscription.receive(1, 5000, signal);
    assert.ok(delivery, 'the reader got the message');
    const closing = transport.close();
    assert.equal(await settledWithin(closing, 1000), false, 'the close waits while the delivery is out');
    await delivery.ack();
    await settlesWithin(closing, 10_000, 'the close once the delivery was settled');
    assert.equal(await pending(transport.keys.stream('closing', 0), 'billing'), 0, 'acked by its reader');
  });

  for (const closer of ['transport', 'subscription'] as const) {
    it(`keeps renewing its leases while it waits (its ${closer} closed), though they are shorter than the wait: no other process gets the entry, and the ack counts`, async () => {
      // Not renewed during the wait, the lease ran out (at most leaseMs after the close), the other process took the
      // partition and ran the entry while the handler here still held it, and this handler's ack was fenced off.
      const LEASE_MS = 600;
      const topic = `closing-${closer}`;
      const errors: string[] = [];
      const open = () =>
        getRedisTransport({
          url: redisUrl,
          application,
          partitions: 1,
          leaseMs: LEASE_MS,
          onError: (error, { stage }) => errors.push(`${stage}: ${(error as Error).message}`),
        });
      const closed = await open();
      const other = await open();
      const signal = new AbortController().signal;
      try {
        const subscription = closed.subscribe(topic, 'billing');
        await closed.publish(topic, [createMessage({ type: 'A', key: 'k', data: { n: 1 } })]);
        const [delivery] = await subscription.receive(1, 5000, signal);
        assert.ok(delivery, 'the reader got the message');
        const lease = closed.keys.lease(topic, 'billing', 0);
        const closing = closer === 'transport' ? closed.close() : subscription.close();
        const waiting = other.subscribe(topic, 'billing');
        // Watched for three lease times from the close on (the close waits up to 5 s): at every look the lease is
        // still the closing reader's, and the other process got nothing.
        const got: Delivery[] = [];
        const until = Date.now() + 3 * LEASE_MS;
        while (Date.now() < until) {
          got.push(...(await waiting.receive(1, 50, signal)));
          assert.deepEqual(
            got.map((d) => d.message.id),
            [],
            'the other process got the entry while a handler here held it',
          );
          assert.equal(await client.get(lease), `${closed.consumerName}-1`, "the lease is still the closing reader's");
        }
        assert.equal(await settledWithin(closing, 0), false, 'the close still waits for the delivery');
        await delivery.ack();
        await settlesWithin(closing, 10_000, 'the close once the delivery was settled');
        assert.equal(await pending(closed.keys.stream(topic, 0), 'billing'), 0, 'acked by its reader');
        assert.deepEqual(errors, [], 'no lease lost, no ack fenced off');
        // Handed back: the other process takes the partition, and nothing of it is left to run.
        await waitUntil(
          () => other.heldPartitions(topic, 'billing').length === 1,
          'the other process to take the partition',
          10_000,
        );
        assert.deepEqual(await waiting.receive(1, 200, signal), []);
        await waiting.close();
      } finally {
        await closed.close();
        await other.close();
      }
    });
  }
});
