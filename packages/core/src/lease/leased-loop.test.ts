import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testLeaseConformance } from '../testing/lease-conformance.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { createInMemoryLeases, type InMemoryLeaseTable } from './in-memory.ts';
import { createLeasedLoop, type LeasedWork } from './leased-loop.ts';
import type { LeaseProvider } from './types.ts';

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
});
