import assert from 'node:assert/strict';
import { defaultRetryPolicy } from '../../messaging/consumer-ports.ts';
import { createMessage, type Message } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { waitUntil } from '../wait-until.ts';
import { type ConsumerCaseContext, type ConsumerConformanceCase, n } from './context.ts';

const KEYS = 20;
const PER_KEY = 15;

/** A seeded generator, so a failing run can be replayed. */
const seeded = (seed: number) => () => {
  seed = (seed * 48271) % 2147483647;
  return seed / 2147483647;
};

// biome-ignore lint/suspicious/noExplicitAny: each case works with any transaction type
type Context = ConsumerCaseContext<any>;

/** Cases where several consumers of one group compete for its messages (as processes sharing the storage would). */
export const competingConsumerCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'competing consumers of one group, one stopped mid-run: per-key order holds across them; every message is applied once',
    async run(c: Context) {
      const random = seeded(11);
      const name = uniqueCategory('accounts');
      const write = (m: Message, tx: unknown) => {
        // Fails before the write, or (where the inbox is transactional) after it: rolled back either way.
        if (random() < 0.1) throw new Error('flaky before');
        const value = `${m.key}:${(m.data as { n: number }).n}`;
        return c.andThen(c.environment.writeEffect(tx, name, value), () => {
          if (c.transactional && random() < 0.05) throw new Error('flaky after');
        });
      };
      const handler = c.synchronousHandlers
        ? (m: Message, tx: unknown) => write(m, tx)
        : async (m: Message, tx: unknown) => {
            // Small random delays shuffle which consumer finishes first.
            await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 3)));
            await write(m, tx);
          };
      const peer = await c.peerTransport();
      const options = { name, concurrency: 3, retryPolicy: defaultRetryPolicy({ immediate: 20 }), handler };
      // Two share the publishing transport (woken at once by its publishes); the third is on the peer, as a
      // consumer in another process would be.
      const first = c.consumer(options);
      const second = c.consumer(options);
      const third = c.consumer({ ...options, transport: peer });
      const consumers = [first, second, third];
      for (const consumer of consumers) await consumer.start();

      // Rounds of one message per key. The first half goes out at once; then, until a consumer has taken part
      // (one may get its share of the work later than the others, e.g. a partition handed over after a claim
      // period, and on a broker whose partitions each have one active consumer, the consumers of one process
      // may have none at all), one round at a time, each once the one before was applied, so that work is left.
      // Then the one that took part (the second, where it did) stops mid-run and the second half goes out.
      let rounds = 0;
      const round = () => {
        const n = rounds++;
        return Array.from({ length: KEYS }, (_, k) => createMessage({ type: 'Paid', data: { n }, key: `acct-${k}` }));
      };
      const publish = async (count: number) => {
        for (let i = 0; i < count; i++) await c.environment.transport.publish(c.topic, round());
      };
      const applied = async () => (await c.environment.effects(name)).length;
      const tookPart = () => [second, third, first].find((consumer) => consumer.stats().handled >= 5);
      await publish(PER_KEY / 2 + (PER_KEY % 2));
      const deadline = Date.now() + 30_000;
      while (tookPart() === undefined && Date.now() < deadline) {
        const expected = rounds * KEYS;
        await waitUntil(
          async () => tookPart() !== undefined || (await applied()) >= expected,
          'the round published to be applied',
          30_000,
        );
        if (tookPart() === undefined) await publish(1);
      }
      const stopped = tookPart();
      assert.ok(stopped, `a consumer took part within 30 s: ${consumers.map((x) => x.stats().handled).join(' / ')}`);
      const stopping = stopped.stop();
      await publish(Math.floor(PER_KEY / 2));
      await stopping;
      const total = rounds * KEYS;
      await waitUntil(async () => (await applied()) >= total, 'every message applied', 60_000);
      const effects = await c.environment.effects(name);
      assert.equal(new Set(effects).size, effects.length, 'a message was applied twice');
      assert.equal(effects.length, total, 'each message applied once');
      for (let k = 0; k < KEYS; k++) {
        assert.deepEqual(
          effects.filter((e) => e.startsWith(`acct-${k}:`)),
          Array.from({ length: rounds }, (_, n) => `acct-${k}:${n}`),
          `key acct-${k} out of order`,
        );
      }
      const left = consumers.filter((consumer) => consumer !== stopped).map((consumer) => consumer.stats().handled);
      assert.ok(
        left.reduce((sum, handled) => sum + handled, 0) > 0,
        `the consumers left running took part: ${left.join(' / ')}`,
      );
    },
  },
  {
    name: "a key's messages waiting in one consumer's lane past the visibility timeout stay with it: never run by another, never twice",
    requires: ['asyncHandlers'],
    async run(c: Context) {
      const name = uniqueCategory('queued');
      const COUNT = 40;
      const runs = new Map<number, number>();
      let inFlight = 0;
      let overlapped = 0;
      const handler = async (m: Message, tx: unknown) => {
        inFlight += 1;
        if (inFlight > 1) overlapped += 1;
        runs.set(n(m), (runs.get(n(m)) ?? 0) + 1);
        // One receive hands out up to 4 × concurrency = 32 of the key: at 40 ms each, the last of them waits
        // in the lane far past the 600 ms visibility timeout.
        await new Promise((resolve) => setTimeout(resolve, 40));
        await c.environment.writeEffect(tx, name, String(n(m)));
        inFlight -= 1;
      };
      const peer = await c.peerTransport();
      const options = { name, concurrency: 8, visibilityTimeoutMs: 600, handler };
      const first = c.consumer(options);
      const second = c.consumer({ ...options, transport: peer });
      await first.start();
      await second.start();
      await c.environment.transport.publish(
        c.topic,
        Array.from({ length: COUNT }, (_, i) => createMessage({ type: 'Queued', data: { n: i }, key: 'one-key' })),
      );
      await waitUntil(async () => (await c.environment.effects(name)).length >= COUNT, 'every message applied', 60_000);
      // Time for a duplicate to show, had a message come back to the other consumer.
      const settledAt = Date.now();
      await waitUntil(() => Date.now() - settledAt >= 700, 'one visibility timeout more');
      assert.equal(overlapped, 0, 'two handlers of the key ran at once');
      assert.deepEqual(
        [...runs.entries()].filter(([, count]) => count !== 1),
        [],
        'a message ran more than once',
      );
      assert.equal(runs.size, COUNT);
      assert.deepEqual(
        await c.environment.effects(name),
        Array.from({ length: COUNT }, (_, i) => String(i)),
      );
    },
  },
];
