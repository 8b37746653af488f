import assert from 'node:assert/strict';
import { isValidationError } from '../../errors/index.ts';
import { isPromiseLike } from '../../messaging/consumer-ports.ts';
import { createMessage } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { waitUntil } from '../wait-until.ts';
import type { ConsumerConformanceCase } from './context.ts';

/** What a late write through a kept transaction handle came to. */
type LateOutcome = { wrote: true } | { refused: unknown };

/**
 * Tries `write()` and records whether it went through or was refused: at once
 * when it is synchronous (so a synchronous handler stays synchronous),
 * otherwise once its promise settled.
 */
const attempt = (write: () => unknown): LateOutcome | Promise<LateOutcome> => {
  try {
    const result = write();
    if (!isPromiseLike(result)) return { wrote: true };
    return Promise.resolve(result).then(
      (): LateOutcome => ({ wrote: true }),
      (refused: unknown): LateOutcome => ({ refused }),
    );
  } catch (refused) {
    return { refused };
  }
};

/**
 * The transactional inbox's promises: a failed handler's writes roll back,
 * and nothing a handler writes escapes its transaction (contract 14): the handle a handler gets refuses work once the
 * handler's transaction ended, so a write from a dangling continuation or a
 * handle kept for later never lands (and never lands in another transaction).
 */
export const transactionCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'a handler that fails after writing leaves nothing behind; its retry applies the message once',
    requires: ['transactional'],
    async run(c) {
      let runs = 0;
      const consumer = c.consumer({
        name: uniqueCategory('invoices'),
        handler: (m, tx) =>
          c.andThen(c.environment.writeEffect(tx, consumer.name, m.id), () => {
            runs += 1;
            if (runs === 1) throw new Error('failed after the write');
          }),
      });
      await consumer.start();
      const message = createMessage({ type: 'OrderPlaced', data: {} });
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => consumer.stats().handled === 1, 'the retry');
      assert.equal(runs, 2);
      assert.deepEqual(await c.environment.effects(consumer.name), [message.id]);
    },
  },
  {
    name: "a write through the handler's transaction after the handler returned is refused and never committed",
    requires: ['transactional'],
    async run(c) {
      let kept: unknown;
      const consumer = c.consumer({
        name: uniqueCategory('late'),
        handler: (m, tx) => {
          kept = tx;
          return c.environment.writeEffect(tx, consumer.name, m.id);
        },
      });
      await consumer.start();
      const first = createMessage({ type: 'OrderPlaced', data: {}, key: 'order-1' });
      await c.environment.transport.publish(c.topic, [first]);
      await waitUntil(() => consumer.stats().handled === 1, 'the message handled');

      // The handle, kept past the handler: its transaction committed long ago.
      const late = await attempt(() => c.environment.writeEffect(kept, consumer.name, 'late'));
      assert.ok('refused' in late, 'a write through an ended transaction handle is refused');
      assert.ok(isValidationError(late.refused), `refused with a ValidationError, got ${String(late.refused)}`);

      // Still refused while another message's transaction is open on the same connection.
      const second = createMessage({ type: 'OrderPlaced', data: {}, key: 'order-2' });
      let during: LateOutcome | undefined;
      const otherTopic = `${c.topic}-other`;
      const other = c.consumer({
        name: uniqueCategory('late-other'),
        topic: otherTopic,
        handler: (m, tx) => {
          const written = c.environment.writeEffect(tx, other.name, m.id);
          // Started while this handler's transaction is open; sync adapters settle it here.
          const pending = attempt(() => c.environment.writeEffect(kept, consumer.name, 'during'));
          if (!isPromiseLike(pending)) {
            during = pending;
            return written;
          }
          return c.andThen(written, () =>
            pending.then((outcome) => {
              during = outcome;
            }),
          );
        },
      });
      await other.start();
      await c.environment.transport.publish(otherTopic, [second]);
      await waitUntil(() => other.stats().handled === 1 && during !== undefined, 'the other message handled');
      assert.ok(during && 'refused' in during, 'refused while another transaction is open');

      assert.deepEqual(await c.environment.effects(consumer.name), [first.id], 'only what the handler wrote in time');
      assert.deepEqual(await c.environment.effects(other.name), [second.id]);
    },
  },
];
