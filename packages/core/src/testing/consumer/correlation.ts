import assert from 'node:assert/strict';
import { createMessage, type Message } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { waitUntil } from '../wait-until.ts';
import type { ConsumerConformanceCase } from './context.ts';

/** Context: correlation and causation carried from a handled message to the messages it causes. */
export const correlationCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'correlation and causation are right across three hops through the transport',
    async run(c) {
      const second = `${c.topic}-stock`;
      const third = `${c.topic}-payments`;
      const hop1 = c.consumer({
        name: uniqueCategory('inventory'),
        handler: () => c.publish(second, [createMessage({ type: 'StockReserved', data: {} })]),
      });
      const hop2 = c.consumer({
        name: uniqueCategory('payments'),
        topic: second,
        handler: () => c.publish(third, [createMessage({ type: 'PaymentRequested', data: {} })]),
      });
      const hop3 = c.consumer({
        name: uniqueCategory('ledger'),
        topic: third,
        handler: (m, tx) => {
          const caused = createMessage({ type: 'Booked', data: {} });
          return c.environment.writeEffect(
            tx,
            hop3.name,
            JSON.stringify({ in: m.metadata, out: caused.metadata, inId: m.id }),
          );
        },
      });
      for (const consumer of [hop1, hop2, hop3]) await consumer.start();
      const first = createMessage({ type: 'OrderPlaced', data: {} });
      await c.environment.transport.publish(c.topic, [first]);
      const [effect] = await waitUntil(async () => {
        const effects = await c.environment.effects(hop3.name);
        return effects.length > 0 && effects;
      }, 'the third hop');
      const seen = JSON.parse(effect as string) as {
        in: Message['metadata'];
        out: Message['metadata'];
        inId: string;
      };
      assert.equal(seen.in.correlationId, first.id, 'hop 2 message keeps the correlation');
      assert.ok(seen.in.causationId && seen.in.causationId !== first.id, 'hop 3 input was caused by the hop 2 message');
      assert.equal(seen.out.correlationId, first.id, 'three hops later, still the first correlation id');
      assert.equal(seen.out.causationId, seen.inId, 'caused by the message being handled');
    },
  },
];
