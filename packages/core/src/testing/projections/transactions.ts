import assert from 'node:assert/strict';
import { isValidationError } from '../../errors/index.ts';
import { isPromiseLike } from '../../messaging/consumer-ports.ts';
import type { RecordedEvent } from '../../store/types.ts';
import { collectAll } from '../conformance/context.ts';
import type { ProjectionConformanceCase } from './context.ts';

/** Runs `write` (sync or async) and resolves to what it threw or rejected with, `undefined` if it went through. */
const refusal = async (write: () => unknown): Promise<unknown> => {
  try {
    const result = write();
    if (isPromiseLike(result)) await result;
    return undefined;
  } catch (error) {
    return error;
  }
};

/**
 * Contract 14 for projections: the transaction a handler gets refuses work
 * once the batch's transaction ended, so a write from a continuation left
 * running, or through a transaction kept for later, never lands.
 */
export const transactionCases: readonly ProjectionConformanceCase[] = [
  {
    name: "a write through a batch's transaction after the batch committed is refused and never lands",
    async run({ store, model, createRunner, names }) {
      const n = names('late');
      let kept: unknown;
      const runner = createRunner([
        {
          name: n.projection,
          handles: [n.type],
          init: (tx) => model.init(tx),
          handle: (events, tx) => {
            kept = tx;
            return model.apply(tx, events, n.projection);
          },
        },
      ]);
      await runner.start();
      const { position } = await store.append(`${n.category}-1`, [{ type: n.type, data: {} }]);
      await runner.waitFor(n.projection, position);
      const [event] = await collectAll(store, { types: [n.type] });

      const refused = await refusal(() => model.apply(kept as never, [event as RecordedEvent], n.projection));
      assert.ok(isValidationError(refused), `refused with a ValidationError, got ${String(refused)}`);
      assert.deepEqual(
        (await model.read(n.projection)).applied,
        [position],
        'the event once: the late write left nothing',
      );
    },
  },
];
