import assert from 'node:assert/strict';
import type { Inbox } from '../../messaging/consumer-ports.ts';
import { createMessage } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { waitUntil } from '../wait-until.ts';
import type { ConsumerConformanceCase } from './context.ts';

/** The inbox: a message applied once however often it is delivered, and marks forgotten after the retention window. */
export const inboxCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'a message delivered again after it was applied is applied once',
    async run(c) {
      const consumer = c.consumer({
        name: uniqueCategory('billing'),
        handler: (m, tx) => c.environment.writeEffect(tx, consumer.name, m.id),
      });
      await consumer.start();
      const message = createMessage({ type: 'OrderPlaced', data: {}, key: 'order-1' });
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => consumer.stats().handled === 1, 'the first delivery');
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => consumer.stats().duplicates === 1, 'the duplicate');
      assert.deepEqual(await c.environment.effects(consumer.name), [message.id]);
    },
  },
  {
    name: "the inbox forgets a consumer's marks older than its retention window, and only that consumer's",
    requires: ['inbox'],
    async run(c) {
      const inbox = c.environment.inbox as Inbox<unknown>;
      const consumer = uniqueCategory('inbox');
      // Another consumer of the same inbox, with a longer retention (and a name with glob characters).
      const other = `${uniqueCategory('audit')}*[x]?`;
      const now = Date.now();
      await inbox.add(consumer, 'old', new Date(now - 10_000));
      await inbox.add(consumer, 'new', new Date(now));
      await inbox.add(other, 'old', new Date(now - 10_000));
      assert.equal(await inbox.has(consumer, 'old'), true);
      assert.equal(await inbox.has(`${consumer}-other`, 'old'), false, 'marks are per consumer');
      await inbox.prune(new Date(now - 5000), consumer);
      assert.equal(await inbox.has(consumer, 'old'), false);
      assert.equal(await inbox.has(consumer, 'new'), true);
      assert.equal(await inbox.has(other, 'old'), true, "another consumer's mark is its own to prune");
      await inbox.prune(new Date(now - 5000), other);
      assert.equal(await inbox.has(other, 'old'), false);
    },
  },
];
