import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTimeoutError } from '../errors/index.ts';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import { startOutboxRelay } from '../messaging/outbox-relay.ts';
import { createLeasedProjections } from '../projections/leased-projections.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { createInMemoryOutbox } from '../testing/in-memory-outbox.ts';
import { getInMemoryProjectionBackend } from '../testing/projections/in-memory-backend.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { getInMemoryTimerStore } from '../workflows/timers/in-memory.ts';
import { createWorkflowTimers } from '../workflows/timers/poller.ts';
import { createInMemoryLeases } from './in-memory.ts';
import type { Lease, LeaseProvider } from './types.ts';

/** Leases whose `acquire()` waits until `answer()` (never, unless the test calls it): a backend that hangs. */
function stuckLeases() {
  const table = new Map<string, string>();
  const provider = createInMemoryLeases(table);
  const answers: (() => void)[] = [];
  const stuck = (lease: Lease): Lease => {
    const acquire = lease.acquire.bind(lease);
    lease.acquire = () =>
      new Promise<boolean>((resolve, reject) => answers.push(() => acquire().then(resolve, reject)));
    return lease;
  };
  const leases: LeaseProvider = { lease: (name) => stuck(provider.lease(name)), close: () => provider.close() };
  return {
    table,
    leases,
    asked: () => answers.length,
    /** The backend answers every take asked for so far. */
    answer: () => {
      for (const answer of answers.splice(0)) answer();
    },
  };
}

describe('a leased runtime stopped while its first lease check waits on a backend that never answers', () => {
  it('outbox relay: stop() and ready() resolve, the stuck take is reported, a late take is given back', async () => {
    const backend = stuckLeases();
    const errors: unknown[] = [];
    const relay = startOutboxRelay(createInMemoryOutbox(), getInMemoryTransport(), {
      lease: backend.leases.lease('outbox'),
      leaseCheckMs: 10,
      onError: (error) => errors.push(error),
    });
    await waitUntil(() => backend.asked() === 1, 'the first take asked for');
    await settlesWithin(relay.stop(), 5000, 'relay.stop()');
    await settlesWithin(relay.ready(), 1000, 'relay.ready()');
    assert.equal(relay.stats().running, false);
    assert.equal(relay.stats().lease, 'standby');
    assert.ok(errors.some(isTimeoutError), String(errors));
    backend.answer();
    await waitUntil(() => backend.table.size === 0, 'the late take given back');
  });

  it('workflow timer poller: stop() and start() resolve, the stuck take is reported', async () => {
    const backend = stuckLeases();
    const errors: unknown[] = [];
    const poller = createWorkflowTimers({
      timers: getInMemoryTimerStore(getInMemoryEventStore()),
      handlers: [],
      lease: backend.leases.lease('workflow-timers'),
      leaseCheckMs: 10,
      onError: (error) => errors.push(error),
    });
    const started = poller.start();
    await waitUntil(() => backend.asked() === 1, 'the first take asked for');
    await settlesWithin(poller.stop(), 5000, 'poller.stop()');
    await settlesWithin(started, 1000, 'poller.start()');
    assert.deepEqual([poller.stats().running, poller.stats().held], [false, false]);
    assert.ok(errors.some(isTimeoutError), String(errors));
    backend.answer();
    await waitUntil(() => backend.table.size === 0, 'the late take given back');
  });

  it('leased projection runner: stop() resolves, start() rejects with the TimeoutError, closes once', async () => {
    const backend = stuckLeases();
    const store = getInMemoryEventStore();
    let closed = 0;
    const runner = createLeasedProjections({
      backend: getInMemoryProjectionBackend(store),
      projections: [{ name: 'counts', handles: ['Counted'], handle: () => {} }],
      options: {},
      leases: backend.leases,
      checkMs: 10,
      headPosition: () => store.headPosition(),
      close: async () => void closed++,
    });
    const started = runner.start();
    const rejected = assert.rejects(started, (error) => isTimeoutError(error));
    await waitUntil(() => backend.asked() === 1, 'the first take asked for');
    await settlesWithin(runner.stop(), 5000, 'runner.stop()');
    await settlesWithin(rejected, 1000, 'runner.start()');
    assert.equal(closed, 1);
    assert.equal(runner.status('counts').state, 'stopped');
    backend.answer();
    await waitUntil(() => backend.table.size === 0, 'the late take given back');
  });
});
