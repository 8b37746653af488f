import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTimeoutError } from '../errors/index.ts';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import { startOutboxRelay } from '../messaging/outbox-relay.ts';
import { createInMemoryOutbox } from '../testing/in-memory-outbox.ts';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { createInMemoryLeases, type InMemoryLeaseTable } from './in-memory.ts';
import { createLeasedLoop, type LeasedLoop, type LeasedWork } from './leased-loop.ts';
import type { Lease } from './types.ts';

/**
 * Makes `lease[method]` hang while `hanging` is set, as a backend that never
 * answers (a connection gone silent, a pool with no free connection): each
 * call then waits until the test answers it.
 */
function hangable(lease: Lease, method: 'acquire' | 'renew') {
  const original = lease[method].bind(lease);
  const control = {
    hanging: false,
    /** Calls that hang: the first `hangNext` only, when set. */
    hangNext: Number.POSITIVE_INFINITY,
    hung: [] as (() => Promise<boolean>)[],
    /** The backend answers the oldest call still hanging; resolves with its answer. */
    answerOldest: () => (control.hung.shift() as () => Promise<boolean>)(),
  };
  lease[method] = () => {
    if (!control.hanging || control.hangNext <= 0) return original();
    control.hangNext -= 1;
    return new Promise<boolean>((resolve, reject) => {
      control.hung.push(() => {
        const answer = original();
        answer.then(resolve, reject);
        return answer;
      });
    });
  };
  return control;
}

/** Works on one lease in several loops, recording in one log who started and stopped, and any overlap. */
function sharedWorks() {
  const log: string[] = [];
  let running = 0;
  let overlaps = 0;
  const work = (who: string, lease: Lease): LeasedWork => ({
    lease,
    async start() {
      running += 1;
      if (running > 1) overlaps += 1;
      log.push(`${who}:start`);
    },
    async stop(reason) {
      // Only a work that runs stops here (the loop also stops a stand-by's at shutdown).
      if (log.lastIndexOf(`${who}:start`) > log.lastIndexOf(`${who}:stopped`)) {
        running -= 1;
        log.push(`${who}:stop:${reason}`, `${who}:stopped`);
      }
    },
  });
  return { log, work, overlaps: () => overlaps };
}

const stopAll = (loops: LeasedLoop[]) => settlesWithin(Promise.all(loops.map((loop) => loop.stop())), 5000, 'stop()');

describe('a leased loop whose lease backend stops answering while it runs', () => {
  it('a renewal that never answers stops the work as lost, reports a TimeoutError, and a stand-by takes over with no overlap', async () => {
    const table: InMemoryLeaseTable = new Map();
    const works = sharedWorks();
    const workA = works.work('a', createInMemoryLeases(table).lease('job'));
    const workB = works.work('b', createInMemoryLeases(table).lease('job'));
    const renewals = hangable(workA.lease, 'renew');
    const errorsA: unknown[] = [];
    const loopA = createLeasedLoop([workA], { checkMs: 10, onError: (_w, error) => errorsA.push(error) });
    const loopB = createLeasedLoop([workB], { checkMs: 10 });
    await loopA.start();
    await loopB.start();
    try {
      assert.deepEqual([loopA.isHeld(workA), loopB.isHeld(workB)], [true, false]);
      renewals.hanging = true;
      const hungAt = performance.now();
      await waitUntil(() => works.log.includes('a:stop:lost'), "the holder's work stopped as lost", 5000);
      const stoppedAfter = performance.now() - hungAt;
      // Its renewal had max(checkMs, 1000) ms to answer, asked at most a check after the hang began.
      assert.ok(stoppedAfter < 3000, `stopped ${Math.round(stoppedAfter)} ms after the backend stopped answering`);
      await waitUntil(() => loopB.isHeld(workB), 'the stand-by taking over', 8000);
      assert.equal(works.overlaps(), 0, works.log.join());
      assert.ok(works.log.indexOf('a:stop:lost') < works.log.indexOf('b:start'), works.log.join());
      const timeout = errorsA.find(isTimeoutError);
      assert.ok(timeout, String(errorsA));
      assert.match(timeout.message, /lease 'job'.*renew/);
    } finally {
      await stopAll([loopA, loopB]);
    }
  });

  it('goes on checking after a renewal is abandoned: the lease is given back, then taken again', async () => {
    const table: InMemoryLeaseTable = new Map();
    const works = sharedWorks();
    const work = works.work('a', createInMemoryLeases(table).lease('job'));
    const renewals = hangable(work.lease, 'renew');
    const errors: unknown[] = [];
    const loop = createLeasedLoop([work], { checkMs: 10, onError: (_w, error) => errors.push(error) });
    await loop.start();
    try {
      renewals.hanging = true;
      renewals.hangNext = 1;
      await waitUntil(
        () => works.log.filter((entry) => entry === 'a:start').length === 2,
        'the work started again',
        5000,
      );
      assert.deepEqual(works.log.slice(0, 4), ['a:start', 'a:stop:lost', 'a:stopped', 'a:start']);
      assert.equal(errors.filter(isTimeoutError).length, 1, String(errors));
      assert.equal(loop.isHeld(work), true);
      // The abandoned renewal answers at last: nothing changes, the work runs on.
      assert.equal(await renewals.answerOldest(), true);
      assert.equal(loop.isHeld(work), true);
    } finally {
      await stopAll([loop]);
    }
    assert.equal(table.size, 0, 'the lease released at stop');
  });

  it('a take that never answers while standing by is abandoned and reported, the checks go on, and a late take is given back', async () => {
    const table: InMemoryLeaseTable = new Map();
    const holder = createInMemoryLeases(table).lease('job');
    assert.equal(await holder.acquire(), true);
    const works = sharedWorks();
    const work = works.work('b', createInMemoryLeases(table).lease('job'));
    const takes = hangable(work.lease, 'acquire');
    const errors: unknown[] = [];
    const loop = createLeasedLoop([work], { checkMs: 10, onError: (_w, error) => errors.push(error) });
    await loop.start();
    try {
      takes.hanging = true;
      await waitUntil(() => takes.hung.length >= 2, 'a second take asked for: the checks went on', 5000);
      const timeout = errors.find(isTimeoutError);
      assert.ok(timeout, String(errors));
      assert.match(timeout.message, /lease 'job'.*acquire/);
      // The lease comes free and the first abandoned take answers: it took the lease, which is given back.
      await holder.release();
      assert.equal(await takes.answerOldest(), true);
      await waitUntil(() => table.size === 0, 'the late take given back', 5000);
      assert.equal(loop.isHeld(work), false);
      assert.ok(!works.log.includes('b:start'), works.log.join());
    } finally {
      takes.hanging = false;
      await stopAll([loop]);
    }
  });

  it("a work's own renewal (through its guard) that never answers stops it as lost, the loop's renewals answering", async () => {
    const table: InMemoryLeaseTable = new Map();
    const lease = createInMemoryLeases(table).lease('job');
    const renewals = hangable(lease, 'renew');
    const log: string[] = [];
    let guardFailed: unknown;
    const work: LeasedWork = {
      lease,
      async start(guard) {
        log.push('start');
        if (renewals.hanging) return;
        // The first renewal after the take is the work's own, and only it hangs.
        renewals.hanging = true;
        renewals.hangNext = 1;
        guard.renew().catch((error: unknown) => {
          guardFailed = error;
        });
      },
      async stop(reason) {
        log.push(`stop:${reason}`);
      },
    };
    const errors: unknown[] = [];
    const loop = createLeasedLoop([work], { checkMs: 10, onError: (_w, error) => errors.push(error) });
    await loop.start();
    try {
      await waitUntil(() => log.includes('stop:lost'), 'the work stopped as lost', 5000);
      assert.ok(isTimeoutError(guardFailed), String(guardFailed));
      assert.deepEqual(errors, [guardFailed], 'told to onError once');
      await waitUntil(() => loop.isHeld(work), 'the lease taken again', 5000);
      assert.deepEqual(log.slice(0, 3), ['start', 'stop:lost', 'start']);
    } finally {
      await stopAll([loop]);
    }
  });

  it('outbox relay: a renewal that never answers hands the outbox to the stand-by relay', async () => {
    const table: InMemoryLeaseTable = new Map();
    const outbox = createInMemoryOutbox();
    const leaseA = createInMemoryLeases(table).lease('outbox');
    const renewals = hangable(leaseA, 'renew');
    const errorsA: unknown[] = [];
    const relayA = startOutboxRelay(outbox, getInMemoryTransport(), {
      lease: leaseA,
      leaseCheckMs: 10,
      onError: (error) => errorsA.push(error),
    });
    await settlesWithin(relayA.ready(), 5000, 'relayA.ready()');
    const relayB = startOutboxRelay(outbox, getInMemoryTransport(), {
      lease: createInMemoryLeases(table).lease('outbox'),
      leaseCheckMs: 10,
    });
    try {
      await settlesWithin(relayB.ready(), 5000, 'relayB.ready()');
      assert.deepEqual([relayA.stats().lease, relayB.stats().lease], ['held', 'standby']);
      renewals.hanging = true;
      await waitUntil(() => relayB.stats().lease === 'held', 'the stand-by relay taking over', 8000);
      assert.equal(relayA.stats().lease, 'standby');
      assert.ok(errorsA.some(isTimeoutError), String(errorsA));
    } finally {
      renewals.hanging = false;
      await settlesWithin(Promise.all([relayA.stop(), relayB.stop()]), 5000, 'relay.stop()');
    }
  });
});

describe('the first take of a start its caller waits for', () => {
  it('is waited for past the call deadline (it may include connecting); a stop meanwhile bounds it from the stop', async () => {
    const table: InMemoryLeaseTable = new Map();
    const works = sharedWorks();
    const work = works.work('a', createInMemoryLeases(table).lease('job'));
    const takes = hangable(work.lease, 'acquire');
    takes.hanging = true;
    takes.hangNext = 1;
    const errors: unknown[] = [];
    // max(checkMs, 1000) = 1000 ms for any other call.
    const loop = createLeasedLoop([work], { checkMs: 10, onError: (_w, error) => errors.push(error) });
    const starting = loop.start();
    const startedAt = performance.now();
    await waitUntil(() => takes.hung.length === 1, 'the first take asked for', 5000);
    // The backend answers a second and a half later, past the deadline of any other call.
    await waitUntil(() => performance.now() - startedAt > 1500, 'a second and a half', 5000, 50);
    await takes.answerOldest();
    await settlesWithin(starting, 5000, 'start()');
    assert.equal(loop.isHeld(work), true);
    assert.deepEqual(works.log, ['a:start']);
    assert.deepEqual(errors, []);
    await stopAll([loop]);

    // A first take that never answers: a stop gives it max(checkMs, 1000) ms from the stop, then start() rejects.
    const stuck = works.work('b', createInMemoryLeases(new Map()).lease('job'));
    const stuckTakes = hangable(stuck.lease, 'acquire');
    stuckTakes.hanging = true;
    const other = createLeasedLoop([stuck], { checkMs: 10 });
    const rejected = assert.rejects(other.start(), (error: Error) => {
      assert.ok(isTimeoutError(error), String(error));
      assert.match(error.message, /lease 'job': its acquire did not answer within 1000 ms of the stop/);
      return true;
    });
    await waitUntil(() => stuckTakes.hung.length === 1, 'the stuck first take asked for', 5000);
    await stopAll([other]);
    await rejected;
    assert.equal(works.log.includes('b:start'), false);
  });
});
