import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConsumer, createMessage, type Delivery, type Subscription } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { withClockOff } from '../../../core/src/testing/fixtures/clock-off.ts';
import { registerTestSdk, type TestSdk } from '../../../core/src/tracing/fixtures/otel-sdk.ts';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresTransport, type PostgresTransport } from './postgres-transport.ts';

const skip = await postgresUnavailable();
const HOUR = 3_600_000;
const never = () => new AbortController().signal;

/** The first delivery of `sub` within `deadlineMs`, or undefined. */
async function firstDelivery(sub: Subscription, deadlineMs: number): Promise<Delivery | undefined> {
  const deadline = performance.now() + deadlineMs;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return undefined;
    const [got] = await sub.receive(1, Math.min(1000, Math.ceil(left)), never());
    if (got) return got;
  }
}

// The database's clock and the processes' disagree: a process's clock is made wrong here (its `Date.now`), the
// database's cannot be.
describe('postgres transport: the publishing and reading processes’ clocks against the database’s', { skip }, () => {
  const schema = testSchema('transport_clock');
  let transport: PostgresTransport;
  let sdk: TestSdk;

  before(async () => {
    sdk = registerTestSdk();
    transport = await getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 4, pollIntervalMs: 10 });
  });

  after(async () => {
    await sdk.shutdown();
    await transport.close();
    await dropSchema(schema);
  });

  it('deliverAt is a delay from the publishing process’s clock, timed by the database’s', async () => {
    for (const [skewMs, delayMs, topic] of [
      [HOUR, 1000, 'from-a-fast-clock'],
      [-HOUR, 1500, 'from-a-slow-clock'],
    ] as const) {
      const sub = transport.subscribe(topic, 'g');
      await transport.declareSubscription(topic, 'g');
      const publishing = performance.now();
      // "In `delayMs`" by a publisher whose clock is an hour off.
      await withClockOff(skewMs, () =>
        transport.publish(topic, [
          createMessage({ type: 'Later', data: {}, deliverAt: new Date(Date.now() + delayMs) }),
        ]),
      );
      const got = await firstDelivery(sub, 10_000);
      const after = performance.now() - publishing;
      assert.ok(got, `a publisher ${skewMs / 1000} s off: due in ${delayMs} ms, not delivered within 10 s`);
      assert.ok(
        after >= delayMs - 50,
        `a publisher ${skewMs / 1000} s off: delivered ${after} ms after, due ${delayMs}`,
      );
      await got.ack();
      await sub.close();
    }
  });

  it('the backlog age is the message’s age at publish, by the publisher’s clock, plus its time in the table, by the database’s', async () => {
    const topic = 'lagging';
    let release: () => void = () => {};
    let handled = 0;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const consumer = createConsumer({
      name: 'billing',
      topic,
      transport,
      pollMs: 10,
      concurrency: 1,
      handler: async () => {
        await held;
        handled += 1;
      },
    });
    await consumer.start();
    const began = performance.now();
    try {
      // Made 10 s ago by a publisher whose clock runs an hour ahead of the reader's.
      await withClockOff(HOUR, () => {
        const made = Date.now() - 10_000;
        return transport.publish(topic, [createMessage({ type: 'Bill', data: {}, key: 'k' }, () => made)]);
      });
      const [lagging] = await sdk.points('factline.consumer.lag.duration');
      const seconds = lagging?.value as number;
      const bound = 10 + (performance.now() - began) / 1000 + 1;
      assert.ok(seconds >= 9.99 && seconds < bound, `about 10 s, got ${seconds}`);
      const backlog = await transport.backlog?.(topic, 'billing');
      assert.equal(backlog?.messages, 1);
      assert.ok(
        backlog?.oldestAgeMs !== undefined && backlog.oldestAgeMs >= 9990 && backlog.oldestAgeMs < bound * 1000,
        `oldestAgeMs about 10,000, got ${backlog?.oldestAgeMs}`,
      );
      release();
      await waitUntil(
        async () => handled === 1 && (await transport.backlog?.(topic, 'billing'))?.messages === 0,
        'the message handled and acked',
      );
    } finally {
      release();
      await consumer.stop();
    }
  });

  it('times out of a timestamp’s range: a deliverAt long past is due at once, and an age too great is left to the reader’s clock', async () => {
    const topic = 'far-off';
    const sub = transport.subscribe(topic, 'g');
    await transport.declareSubscription(topic, 'g');
    const earliest = new Date(-8.64e15);
    const message = createMessage({ type: 'Ancient', data: {}, deliverAt: earliest }, () => earliest.getTime());
    await transport.publish(topic, [message]);
    const backlog = await transport.backlog?.(topic, 'g');
    assert.deepEqual(backlog, { messages: 1, oldestAt: earliest.getTime() });
    const got = await firstDelivery(sub, 5000);
    assert.equal(got?.message.id, message.id);
    await got?.ack();
    await sub.close();
  });

  it('a row queued before the created_at column (null) is aged by its createdAt and the reader’s clock', async () => {
    const topic = 'queued-before';
    await transport.declareSubscription(topic, 'g');
    const made = Date.now() - 5000;
    await transport.publish(topic, [createMessage({ type: 'Old', data: {} }, () => made)]);
    await transport.pool.query(
      `UPDATE "${schema}".transport_messages SET created_at = NULL WHERE topic = $1 AND group_name = 'g'`,
      [topic],
    );
    assert.deepEqual(await transport.backlog?.(topic, 'g'), { messages: 1, oldestAt: made });
  });
});
