import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidationError, StorageError, type ValidationError } from '../errors/index.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { getInMemoryProjectionBackend, type InMemoryProjectionTx } from '../testing/projections/in-memory-backend.ts';
import { createProjectionRunner } from './runner.ts';
import type { Projection, ProjectionBackend } from './types.ts';

/** A projection counting `Counted` events into the table `counts`, parking the events its handler fails on. */
function counting(name: string, failing: () => boolean = () => false): Projection<InMemoryProjectionTx> {
  return {
    name,
    handles: ['Counted'],
    onFailure: 'park',
    handle(events, tx) {
      if (failing()) throw new StorageError('the handler wrote to a service that was down', { retryable: true });
      const counts = tx.table('counts');
      counts.set(name, ((counts.get(name) as number | undefined) ?? 0) + events.length);
    },
  };
}

const fast = { maxAttempts: 3, idleCheckMs: 10, initialBackoffMs: 1, maxBackoffMs: 2 };

describe("projection runner: onFailure 'park' and storage failures", () => {
  it('a commit the database refuses for a while (retryable) is tried again until it applies: nothing parked', async () => {
    const store = getInMemoryEventStore();
    const base = getInMemoryProjectionBackend(store);
    // More commits fail than maxAttempts, as a busy file or a dropped connection does, before the database is back.
    let outage = 5;
    const errors: unknown[] = [];
    const backend: ProjectionBackend<InMemoryProjectionTx> = {
      ...base,
      commit: async (batch) => {
        if (batch.work && outage > 0) {
          outage -= 1;
          throw new StorageError('database is locked', { retryable: true });
        }
        return base.commit(batch);
      },
    };
    const runner = createProjectionRunner(backend, [counting('p')], {
      ...fast,
      onError: (_name, error) => errors.push(error),
    });
    const { position } = await store.append('counter-1', [{ type: 'Counted', data: {} }]);
    await runner.start();
    try {
      await runner.waitFor('p', position);
      const parked = await runner.parked('p');
      assert.deepEqual(
        { applied: base.read('counts').get('p'), parked: parked.length },
        { applied: 1, parked: 0 },
        `parked: ${parked[0]?.error.split('\n')[0]}`,
      );
      assert.equal(errors.length, 5, 'every refused commit reported');
    } finally {
      await runner.stop();
    }
  });

  it("a retryable StorageError the handler throws is the handler's failure: the event is parked", async () => {
    const store = getInMemoryEventStore();
    const backend = getInMemoryProjectionBackend(store);
    const runner = createProjectionRunner(backend, [counting('p', () => true)], fast);
    const { position } = await store.append('counter-1', [{ type: 'Counted', data: {} }]);
    await runner.start();
    try {
      await runner.waitFor('p', position);
      const parked = await runner.parked('p');
      assert.equal(parked.length, 1);
      assert.match(parked[0]?.error ?? '', /service that was down/);
    } finally {
      await runner.stop();
    }
  });
});

describe("projection runner: a projection's onFailure and effects", () => {
  it('a value outside their choices is a ValidationError naming the projection and the option', () => {
    const backend = getInMemoryProjectionBackend(getInMemoryEventStore());
    // 'skip' acted as 'stop', 'externl' as 'transactional'.
    for (const [option, value] of [
      ['onFailure', 'skip'],
      ['effects', 'externl'],
    ] as const) {
      const projection = { ...counting('totals'), [option]: value } as unknown as Projection<InMemoryProjectionTx>;
      assert.throws(
        () => createProjectionRunner(backend, [projection]),
        (error) =>
          isValidationError(error) &&
          (error as ValidationError).issues.some(
            (issue) => issue.path === option && issue.message.includes("'totals'") && issue.message.includes(value),
          ),
        `${option}: '${value}'`,
      );
    }
  });
});
