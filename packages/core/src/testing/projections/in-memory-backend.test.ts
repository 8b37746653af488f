import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidationError } from '../../errors/index.ts';
import { createProjectionRunner } from '../../projections/runner.ts';
import { getInMemoryEventStore } from '../../store/in-memory.ts';
import type { RecordedEvent } from '../../store/types.ts';
import { testProjectionConformance } from '../projection-conformance.ts';
import type { CounterModel } from './context.ts';
import { getInMemoryProjectionBackend, type InMemoryProjectionTx } from './in-memory-backend.ts';

const SEP = '\u0000';

/** The suite's counter read model on the in-memory backend's tables. */
function counterModel(read: (table: string) => Map<string, unknown>): CounterModel<InMemoryProjectionTx> {
  return {
    init(tx) {
      tx.table('counters');
      tx.table('applied');
    },
    reset(tx, projection) {
      const counters = tx.table('counters');
      for (const key of [...counters.keys()]) if (key.startsWith(`${projection}${SEP}`)) counters.delete(key);
      tx.table('applied').delete(projection);
    },
    apply(tx, events: readonly RecordedEvent[], projection) {
      const counters = tx.table('counters');
      const applied = tx.table('applied');
      for (const event of events) {
        const key = `${projection}${SEP}${event.streamId}`;
        counters.set(key, ((counters.get(key) as number | undefined) ?? 0) + 1);
        applied.set(projection, [...((applied.get(projection) as number[] | undefined) ?? []), event.position]);
      }
    },
    async read(projection) {
      const perStream: Record<string, number> = {};
      for (const [key, count] of read('counters')) {
        const [owner, stream] = key.split(SEP) as [string, string];
        if (owner === projection) perStream[stream] = count as number;
      }
      return { perStream, applied: [...((read('applied').get(projection) as number[] | undefined) ?? [])] };
    },
  };
}

// The projection runner's own test bed: the whole projection conformance suite on the in-memory
// store and backend, no database involved.
testProjectionConformance<InMemoryProjectionTx>({
  name: 'in-memory backend',
  async createEnvironment() {
    const store = getInMemoryEventStore();
    const backend = getInMemoryProjectionBackend(store);
    return { store, backend, model: counterModel(backend.read), close: () => store.close() };
  },
});

describe('in-memory projection backend', () => {
  it('commits a batch whole or not at all, and a kept transaction refuses later writes', async () => {
    const store = getInMemoryEventStore();
    const backend = getInMemoryProjectionBackend(store);
    let kept: InMemoryProjectionTx | undefined;
    await assert.rejects(
      backend.commit({
        name: 'p',
        expected: 0,
        checkpoint: 2,
        work: (tx) => {
          tx.table('rows').set('a', 1);
          throw new Error('boom');
        },
      }),
      /boom/,
    );
    assert.equal(backend.read('rows').size, 0, 'a failed batch leaves nothing');
    assert.equal(await backend.loadCheckpoint('p'), 0);
    assert.equal(
      await backend.commit({
        name: 'p',
        expected: 0,
        checkpoint: 2,
        work: (tx) => {
          kept = tx;
          tx.table('rows').set('a', 1);
        },
      }),
      true,
    );
    assert.deepEqual([...backend.read('rows')], [['a', 1]]);
    assert.equal(await backend.commit({ name: 'p', expected: 0, checkpoint: 3 }), false, 'a moved checkpoint refuses');
    assert.throws(() => kept?.table('rows'), isValidationError);
  });

  it('runs a projection through the runner', async () => {
    const store = getInMemoryEventStore();
    const backend = getInMemoryProjectionBackend(store);
    const runner = createProjectionRunner(
      backend,
      [
        {
          name: 'totals',
          handles: ['Paid'],
          handle: (events, tx: InMemoryProjectionTx) => {
            const totals = tx.table('totals');
            for (const e of events) totals.set(e.streamId, ((totals.get(e.streamId) as number) ?? 0) + 1);
          },
        },
      ],
      { idleCheckMs: 10 },
    );
    await runner.start();
    try {
      await store.append('order-1', [
        { type: 'Paid', data: {} },
        { type: 'Paid', data: {} },
      ]);
      const { position } = await store.append('order-2', [{ type: 'Paid', data: {} }]);
      await runner.waitFor('totals', position);
      assert.deepEqual(Object.fromEntries(backend.read('totals')), { 'order-1': 2, 'order-2': 1 });
    } finally {
      await runner.stop();
    }
  });
});
