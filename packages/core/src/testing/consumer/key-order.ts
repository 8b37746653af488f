import assert from 'node:assert/strict';
import { defaultRetryPolicy } from '../../messaging/consumer-ports.ts';
import { createMessage, type Message } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { waitUntil } from '../wait-until.ts';
import { type ConsumerConformanceCase, n } from './context.ts';

/** Key lanes: per-key order under parallelism and failures, every message applied once. */
export const keyOrderCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'per-key order holds under parallelism with injected random failures; every message is applied once',
    async run(c) {
      let active = 0;
      let peak = 0;
      let seed = 7;
      const random = () => {
        seed = (seed * 48271) % 2147483647;
        return seed / 2147483647;
      };
      const write = (m: Message, tx: unknown) => {
        // Fails before the write, or (where the inbox is transactional) after it: rolled back either way.
        if (random() < 0.1) throw new Error('flaky before');
        return c.andThen(c.environment.writeEffect(tx, consumer.name, `${m.key}:${n(m)}`), () => {
          if (c.transactional && random() < 0.1) throw new Error('flaky after');
        });
      };
      const consumer = c.consumer({
        name: uniqueCategory('ledger'),
        concurrency: 6,
        retryPolicy: defaultRetryPolicy({ immediate: 20 }),
        handler: c.synchronousHandlers
          ? (m, tx) => write(m, tx)
          : async (m, tx) => {
              active += 1;
              peak = Math.max(peak, active);
              try {
                await new Promise((resolve) => setImmediate(resolve));
                await write(m, tx);
              } finally {
                active -= 1;
              }
            },
      });
      const messages: Message[] = [];
      for (let i = 0; i < 15; i++) {
        for (let k = 0; k < 12; k++) messages.push(createMessage({ type: 'Paid', data: { n: i }, key: `acct-${k}` }));
      }
      await consumer.start(); // a group receives what is published after it first subscribed
      await c.environment.transport.publish(c.topic, messages);
      await waitUntil(() => consumer.stats().handled === messages.length, 'every message', 30_000);
      const effects = await c.environment.effects(consumer.name);
      assert.equal(effects.length, messages.length, 'each message applied once');
      for (let k = 0; k < 12; k++) {
        assert.deepEqual(
          effects.filter((e) => e.startsWith(`acct-${k}:`)),
          Array.from({ length: 15 }, (_, i) => `acct-${k}:${i}`),
          `key acct-${k} out of order`,
        );
      }
      if (!c.synchronousHandlers && !c.handlersTakeTurns) {
        assert.ok(peak > 1, 'keys should run in parallel');
        assert.ok(peak <= 6, `more than the concurrency limit ran at once (${peak})`);
      }
      assert.ok(consumer.stats().retries > 0, 'the random failures should have caused retries');
    },
  },
];
