import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import { fetchIntoLanes } from './consumer-fetch.ts';
import type { LaneSlot } from './consumer-inbox.ts';
import { createKeyLanes, type KeyLanes } from './consumer-lanes.ts';
import { createMessage } from './message.ts';
import type { Delivery, Subscription } from './transport.ts';

/**
 * A subscription handing out `supply` messages of distinct keys, as many as asked at once (waiting up to
 * `waitMs` when it has none left); `over` holds every ask that would take the lanes past `bound`.
 */
function fakeSubscription(supply: number, lanes: KeyLanes, bound: number) {
  const over: string[] = [];
  let next = 0;
  const subscription: Subscription = {
    receive: async (max, waitMs, signal) => {
      if (lanes.buffered() + max > bound) over.push(`${max} asked with ${lanes.buffered()} buffered`);
      if (next === supply) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, waitMs);
          const done = () => {
            clearTimeout(timer);
            resolve();
          };
          signal.addEventListener('abort', done, { once: true });
        });
      }
      const out: Delivery[] = [];
      while (out.length < max && next < supply) {
        const n = next++;
        out.push({
          message: createMessage({ type: 'Noted', data: { n }, key: `k${n}` }),
          deliveryCount: 1,
          ack: async () => undefined,
          release: async () => undefined,
          extend: async () => undefined,
        });
      }
      return out;
    },
    close: async () => undefined,
  };
  return { subscription, over, handedOut: () => next };
}

/** Runs that wait (as for a shared group commit, when `shared`) until the test finishes them. */
function heldRuns(shared: boolean) {
  const finishers: (() => void)[] = [];
  return {
    finishers,
    process: (_: Delivery, slot: LaneSlot) =>
      new Promise<boolean>((resolve) => {
        // As an inbox does: queued for the commit once the run got there (after its lane started).
        if (shared) queueMicrotask(() => slot.waiting());
        finishers.push(() => {
          if (shared) slot.working();
          resolve(true);
        });
      }),
    finishAll() {
      for (const finish of finishers.splice(0)) finish();
    },
  };
}

const settings = (lanes: KeyLanes, signal: AbortSignal) => ({
  concurrency: 2,
  pollMs: 50,
  lanes,
  pruneInbox: async () => undefined,
  signal,
  sleep: async () => undefined,
  report: (error: unknown) => assert.fail(`unexpected failure: ${String(error)}`),
  fail: () => assert.fail('the transport was not closed'),
});

describe('fetchIntoLanes', () => {
  it('holds 4 × concurrency deliveries while the lanes work', async () => {
    const stop = new AbortController();
    const runs = heldRuns(false);
    const lanes = createKeyLanes({
      concurrency: 2,
      process: runs.process,
      signal: () => stop.signal,
      report: () => {},
    });
    const source = fakeSubscription(100, lanes, 8);
    const loop = fetchIntoLanes(source.subscription, settings(lanes, stop.signal));
    await waitUntil(() => runs.finishers.length === 2, 'two lanes working');
    assert.equal(source.handedOut(), 8, 'one receive of 8');
    assert.equal(lanes.settling(), 0);
    await waitUntil(() => {
      runs.finishAll();
      return source.handedOut() > 8;
    }, 'a refill once half the buffer was worked off');
    stop.abort();
    await settlesWithin(loop, 2000, 'the fetch loop');
    runs.finishAll();
    await settlesWithin(lanes.drain(1000), 2000, 'drain');
    assert.deepEqual(source.over, [], 'never past 4 × 2');
  });

  it('fetches more while runs wait for a shared commit, never past 32 × concurrency', async () => {
    const stop = new AbortController();
    const runs = heldRuns(true);
    const lanes = createKeyLanes({
      concurrency: 2,
      process: runs.process,
      signal: () => stop.signal,
      report: () => {},
    });
    const source = fakeSubscription(100, lanes, 64);
    const loop = fetchIntoLanes(source.subscription, settings(lanes, stop.signal));
    // Every key's run waits for the shared commit: each frees its place, so every fetched key starts,
    // until less than half a buffer (4) fits under the bound.
    await waitUntil(
      () => runs.finishers.length === source.handedOut() && source.handedOut() > 64 - 4,
      'the runs of over 60 keys waiting together',
    );
    const first = source.handedOut();
    assert.ok(first <= 64, `${first} fetched`);
    assert.equal(lanes.buffered(), first);
    assert.equal(lanes.settling(), first);
    runs.finishAll();
    await waitUntil(() => runs.finishers.length === 100 - first, 'the rest fetched once the commit settled');
    assert.equal(source.handedOut(), 100);
    runs.finishAll();
    await waitUntil(() => lanes.buffered() === 0, 'all settled');
    stop.abort();
    await settlesWithin(loop, 2000, 'the fetch loop');
    assert.deepEqual(source.over, [], 'never past 32 × 2');
  });

  it('an empty receive that answers at once lets timers run before the next receive', async () => {
    const stop = new AbortController();
    const lanes = createKeyLanes({
      concurrency: 2,
      process: async () => true,
      signal: () => stop.signal,
      report: () => {},
    });
    let timerFired = false;
    let receives = 0;
    // A transport that ignores the wait: every receive answers an empty hand as a microtask.
    const subscription: Subscription = {
      receive: async () => {
        receives += 1;
        if (timerFired || receives === 10_000) stop.abort();
        return [];
      },
      close: async () => undefined,
    };
    setTimeout(() => {
      timerFired = true;
    }, 1);
    await settlesWithin(fetchIntoLanes(subscription, settings(lanes, stop.signal)), 5000, 'the fetch loop');
    assert.ok(timerFired, `a 1 ms timer had not fired after ${receives} empty receives`);
  });
});
