import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTimeoutError } from '../errors/index.ts';
import { testLeaseConformance } from '../testing/lease-conformance.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { createInMemoryLeases, type InMemoryLeaseTable } from './in-memory.ts';
import { createLeasedLoop, type LeasedWork } from './leased-loop.ts';
import type { Lease, LeaseProvider } from './types.ts';

const table: InMemoryLeaseTable = new Map();
const made = new WeakMap<LeaseProvider, ReturnType<typeof createInMemoryLeases>>();
testLeaseConformance({
  name: 'in-memory',
  createProvider: () => {
    const provider = createInMemoryLeases(table);
    made.set(provider, provider);
    return provider;
  },
  loseLeases: async (provider) => made.get(provider)?.lose(),
});

/** A work that records what the loop asked of it. */
function recordingWork(provider: LeaseProvider, name: string, startFails = false) {
  const log: string[] = [];
  const work: LeasedWork = {
    lease: provider.lease(name),
    async start() {
      log.push('start');
      if (startFails) throw new Error('init failed');
    },
    async stop(reason) {
      log.push(`stop:${reason}`);
    },
    async whileStandby() {
      log.push('standby');
    },
  };
  return { work, log };
}

/** Makes `lease.acquire()` wait until `answer()` is called (never, unless the test does): a backend that hangs. */
function stuckAcquire(lease: Lease) {
  const acquire = lease.acquire.bind(lease);
  const stuck = { calls: 0, answer: () => {} };
  lease.acquire = () => {
    stuck.calls += 1;
    return new Promise<boolean>((resolve, reject) => {
      stuck.answer = () => acquire().then(resolve, reject);
    });
  };
  return stuck;
}

/** The timers the process has running (Node's resource list). */
const runningTimers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

describe('createLeasedLoop', () => {
  it('runs a work in one loop at a time; a lost lease stops it at once and another loop takes over', async () => {
    const shared: InMemoryLeaseTable = new Map();
    const a = createInMemoryLeases(shared);
    const b = createInMemoryLeases(shared);
    const workA = recordingWork(a, 'job');
    const workB = recordingWork(b, 'job');
    const changes: string[] = [];
    const loopA = createLeasedLoop([workA.work], {
      checkMs: 10,
      onLeaseChange: (_w, lease) => changes.push(`a:${lease}`),
    });
    const loopB = createLeasedLoop([workB.work], {
      checkMs: 10,
      onLeaseChange: (_w, lease) => changes.push(`b:${lease}`),
    });
    await loopA.start();
    await loopB.start();
    try {
      assert.equal(loopA.isHeld(workA.work), true);
      assert.equal(loopB.isHeld(workB.work), false);
      assert.deepEqual(workA.log, ['start']);
      assert.equal(workB.log[0], 'standby');

      a.lose();
      // Stopped at once, before any check ran.
      assert.equal(loopA.isHeld(workA.work), false);
      await waitUntil(() => workA.log.includes('stop:lost'), 'the lost work stopped');
      await waitUntil(() => loopB.isHeld(workB.work), 'the other loop taking over', 2000);
      assert.ok(workB.log.includes('start'));
      assert.deepEqual(changes.slice(0, 3), ['a:held', 'a:standby', 'b:held']);
    } finally {
      await Promise.all([loopA.stop(), loopB.stop()]);
    }
    assert.equal(shared.size, 0, 'stop released the lease');
    assert.ok(workB.log.at(-1) === 'stop:stopping');
  });

  it('a start that fails rejects start(), releases the lease and stops the work; stop() twice resolves', async () => {
    const shared: InMemoryLeaseTable = new Map();
    const provider = createInMemoryLeases(shared);
    const { work, log } = recordingWork(provider, 'failing', true);
    let closed = 0;
    const loop = createLeasedLoop([work], { checkMs: 10, close: async () => void closed++ });
    await assert.rejects(loop.start(), /init failed/);
    assert.equal(shared.size, 0, 'the lease was given back');
    assert.equal(loop.running(), false);
    assert.ok(log.includes('stop:stopping'));
    await loop.stop();
    await loop.stop();
    assert.equal(closed, 1);
  });

  it("with startFailures 'report', a failed first take is reported and tried again", async () => {
    const provider = createInMemoryLeases(new Map());
    const lease = provider.lease('flaky');
    let failures = 1;
    const acquire = lease.acquire.bind(lease);
    lease.acquire = async () => {
      if (failures-- > 0) throw new Error('busy');
      return acquire();
    };
    const { work } = recordingWork(provider, 'flaky');
    const errors: unknown[] = [];
    const loop = createLeasedLoop([work], {
      checkMs: 10,
      startFailures: 'report',
      onError: (_w, error) => errors.push(error),
    });
    await loop.start();
    try {
      assert.equal(errors.length, 1);
      await waitUntil(() => loop.isHeld(work), 'the lease taken at a later check', 2000);
    } finally {
      await loop.stop();
    }
  });

  it('stop() resolves while the first lease check waits on an acquire that never answers; the call is reported and a late take released', async () => {
    const shared: InMemoryLeaseTable = new Map();
    const provider = createInMemoryLeases(shared);
    const { work, log } = recordingWork(provider, 'stuck');
    const stuck = stuckAcquire(work.lease);
    const errors: unknown[] = [];
    let closed = 0;
    const loop = createLeasedLoop([work], {
      checkMs: 10,
      startFailures: 'report',
      onError: (_w, error) => errors.push(error),
      close: async () => void closed++,
    });
    const started = loop.start();
    await waitUntil(() => stuck.calls === 1, 'the first take asked for');
    await settlesWithin(loop.stop(), 5000, 'loop.stop()');
    await settlesWithin(started, 1000, 'loop.start()');
    assert.equal(closed, 1);
    assert.equal(loop.running(), false);
    assert.ok(!log.includes('start'), 'the work never started');
    assert.equal(errors.length, 1);
    assert.ok(isTimeoutError(errors[0]), String(errors[0]));
    assert.match((errors[0] as Error).message, /'stuck'.*acquire/);
    // The backend answers at last: the lease it took is given back.
    stuck.answer();
    await waitUntil(() => shared.size === 0 && !work.lease.isHeld(), 'the late take released');
    assert.ok(!log.includes('start'), 'the work did not start on the late take');
  });

  it("with startFailures 'reject', start() rejects and stop() resolves while the first acquire never answers", async () => {
    const provider = createInMemoryLeases(new Map());
    const { work } = recordingWork(provider, 'stuck');
    const stuck = stuckAcquire(work.lease);
    let closed = 0;
    const loop = createLeasedLoop([work], { checkMs: 10, close: async () => void closed++ });
    const started = loop.start();
    const rejected = assert.rejects(started, (error) => isTimeoutError(error));
    await waitUntil(() => stuck.calls === 1, 'the first take asked for');
    await settlesWithin(loop.stop(), 5000, 'loop.stop()');
    await settlesWithin(rejected, 1000, 'loop.start()');
    assert.equal(closed, 1, 'closed once');
  });

  it('stop() resolves while a renewal never answers: it is abandoned and reported, the work stopped, the lease released', async () => {
    const shared: InMemoryLeaseTable = new Map();
    const provider = createInMemoryLeases(shared);
    const { work, log } = recordingWork(provider, 'renewing');
    const errors: unknown[] = [];
    const loop = createLeasedLoop([work], { checkMs: 10, onError: (_w, error) => errors.push(error) });
    await loop.start();
    let renewals = 0;
    work.lease.renew = () => {
      renewals += 1;
      return new Promise<boolean>(() => {});
    };
    loop.wake();
    await waitUntil(() => renewals > 0, 'a renewal asked for');
    await settlesWithin(loop.stop(), 5000, 'loop.stop()');
    assert.ok(
      errors.some((error) => isTimeoutError(error) && /'renewing'.*renew/.test(error.message)),
      String(errors),
    );
    assert.equal(log[0], 'start');
    assert.ok(log.includes('stop:lost') || log.includes('stop:stopping'), log.join());
    assert.equal(shared.size, 0, 'the lease released');
  });

  it('start() followed at once by stop() resolves both, holds no lease, runs no timer, closes once', async () => {
    for (const startFailures of ['reject', 'report'] as const) {
      const shared: InMemoryLeaseTable = new Map();
      const provider = createInMemoryLeases(shared);
      const { work, log } = recordingWork(provider, 'quick');
      let closed = 0;
      const timersBefore = runningTimers();
      const loop = createLeasedLoop([work], { checkMs: 10, startFailures, close: async () => void closed++ });
      const started = loop.start();
      const stopped = loop.stop();
      await settlesWithin(Promise.all([started, stopped]), 5000, `start() and stop() (${startFailures})`);
      assert.equal(shared.size, 0, 'no lease held');
      assert.equal(work.lease.isHeld(), false);
      assert.equal(loop.running(), false);
      assert.equal(closed, 1);
      assert.equal(runningTimers(), timersBefore, 'no timer left running');
      assert.ok(!log.includes('start') || log.at(-1) === 'stop:stopping', log.join());
    }
  });

  it('start() then stop() while the first take is in flight: the take completes, then stop gives the lease back', async () => {
    const shared: InMemoryLeaseTable = new Map();
    const provider = createInMemoryLeases(shared);
    const { work, log } = recordingWork(provider, 'slow');
    const stuck = stuckAcquire(work.lease);
    let closed = 0;
    const timersBefore = runningTimers();
    const loop = createLeasedLoop([work], { checkMs: 10, close: async () => void closed++ });
    const started = loop.start();
    await waitUntil(() => stuck.calls === 1, 'the first take asked for');
    const stopped = loop.stop();
    stuck.answer();
    await settlesWithin(Promise.all([started, stopped]), 5000, 'start() and stop()');
    assert.equal(shared.size, 0, 'no lease held');
    assert.equal(closed, 1);
    assert.equal(runningTimers(), timersBefore, 'no timer left running');
    assert.deepEqual(log, ['start', 'stop:stopping']);
  });

  it("with startFailures 'reject', a first start failing after stop() was called: start() rejects, stop() resolves, one close", async () => {
    const provider = createInMemoryLeases(new Map());
    const { work } = recordingWork(provider, 'failing', true);
    const stuck = stuckAcquire(work.lease);
    let closed = 0;
    const loop = createLeasedLoop([work], { checkMs: 10, close: async () => void closed++ });
    const started = loop.start();
    const rejected = assert.rejects(started, /init failed/);
    await waitUntil(() => stuck.calls === 1, 'the first take asked for');
    const stopped = loop.stop();
    stuck.answer();
    await settlesWithin(Promise.all([rejected, stopped]), 5000, 'start() and stop()');
    assert.equal(closed, 1);
    assert.equal(work.lease.isHeld(), false);
  });
});
