import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settlesWithin, waitUntil } from '../testing/wait-until.ts';
import type { LaneSlot } from './consumer-inbox.ts';
import { createKeyLanes } from './consumer-lanes.ts';
import { createMessage } from './message.ts';
import type { Delivery } from './transport.ts';

/** A delivery that records how it was settled (the lanes only give back; the pipeline acks). */
function delivery(key: string, n: number, settled: string[]): Delivery {
  return {
    message: createMessage({ type: 'Noted', data: { n }, key }),
    deliveryCount: 1,
    ack: async () => void settled.push(`ack ${key}${n}`),
    release: async (ms) => void settled.push(`release ${key}${n} ${ms}`),
    extend: async () => undefined,
  };
}

/** A `process` whose runs the test finishes by hand, in any order. */
function manualProcess() {
  const inFlight = new Map<string, (settled: boolean) => void>();
  const slots = new Map<string, LaneSlot>();
  const started: string[] = [];
  return {
    started,
    inFlight,
    slots,
    process: (d: Delivery, slot: LaneSlot) =>
      new Promise<boolean>((resolve) => {
        const name = `${d.message.key}${(d.message.data as { n: number }).n}`;
        started.push(name);
        slots.set(name, slot);
        inFlight.set(name, (settled) => {
          inFlight.delete(name);
          resolve(settled);
        });
      }),
    finish(name: string, settled = true) {
      const done = inFlight.get(name);
      assert.ok(done, `${name} is in flight`);
      done(settled);
    },
  };
}

/** Key lanes over a `manualProcess`; `add` takes deliveries by name (`a1`: key `a`, n 1). */
function manualLanes(concurrency: number) {
  const settled: string[] = [];
  const work = manualProcess();
  const stop = new AbortController();
  const lanes = createKeyLanes({ concurrency, process: work.process, signal: () => stop.signal, report: () => {} });
  const add = (names: string[]) =>
    lanes.add(names.map((name) => delivery(name[0] as string, Number(name[1]), settled)));
  return { settled, work, stop, lanes, add };
}

describe('createKeyLanes', () => {
  it('runs a key one delivery at a time in arrival order, and keys side by side up to concurrency', async () => {
    const { settled, work, lanes, add } = manualLanes(2);
    add(['a1', 'b1', 'a2', 'c1']);
    assert.deepEqual(work.started, ['a1', 'b1'], 'two keys at once; a2 waits for a1, c1 for a free lane');
    assert.equal(lanes.buffered(), 4);
    work.finish('b1');
    await waitUntil(() => work.started.includes('c1'), 'c1 starts once b frees a lane');
    assert.deepEqual(work.started, ['a1', 'b1', 'c1'], 'a2 still waits for a1');
    work.finish('a1');
    await waitUntil(() => work.started.includes('a2'), 'a2 runs after a1');
    work.finish('a2');
    work.finish('c1');
    await waitUntil(() => lanes.buffered() === 0, 'every lane empty');
    await settlesWithin(lanes.drain(1000), 2000, 'drain');
    assert.deepEqual(settled, [], 'nothing given back');
  });

  it("gives a failed delivery's later deliveries of its key back behind it, and what never started on giveBack", async () => {
    const { settled, work, stop, lanes, add } = manualLanes(1);
    add(['a1', 'a2', 'a3', 'b1']);
    work.finish('a1', false);
    await waitUntil(() => work.started.includes('b1'), 'b1 runs once key a is given back');
    assert.deepEqual(settled, ['release a2 0', 'release a3 0'], 'a2 and a3 go back, never run before a1');
    add(['b2', 'c1']);
    stop.abort();
    await lanes.giveBack(1000);
    assert.deepEqual(
      settled.slice(2).sort(),
      ['release b2 0', 'release c1 0'],
      'b1 in flight stays; the rest goes back',
    );
    work.finish('b1');
    await settlesWithin(lanes.drain(1000), 2000, 'drain');
    assert.deepEqual(work.started, ['a1', 'b1'], 'no lane starts once stopped');
  });

  it('a run the drain left behind ends with its delivery; what was given back never runs, and the next start has the key', async () => {
    const settled: string[] = [];
    const work = manualProcess();
    let stop = new AbortController();
    const lanes = createKeyLanes({
      concurrency: 2,
      process: work.process,
      signal: () => stop.signal,
      report: () => {},
    });
    const add = (names: string[]) =>
      lanes.add(names.map((name) => delivery(name[0] as string, Number(name[1]), settled)));
    add(['a1', 'a2', 'a3']);
    assert.deepEqual(work.started, ['a1']);
    // A stop whose drain runs out while a1's handler still runs: a2 and a3 go back to the transport.
    stop.abort();
    await lanes.drain(10);
    await lanes.giveBack(1000);
    assert.deepEqual(settled, ['release a2 0', 'release a3 0']);
    // Started again; the transport hands the key's messages out anew.
    stop = new AbortController();
    add(['a1', 'a2', 'a3']);
    assert.deepEqual(work.started, ['a1'], "the key waits for the old run's handler");
    work.finish('a1');
    await waitUntil(() => work.started.length === 2, 'the new lane starts once the old run ended');
    assert.deepEqual(work.started, ['a1', 'a1'], 'the old run did not go on with what it gave back');
    work.finish('a1');
    await waitUntil(() => work.started.length === 3, 'a2');
    work.finish('a2');
    await waitUntil(() => work.started.length === 4, 'a3');
    work.finish('a3');
    await waitUntil(() => lanes.buffered() === 0, 'the new lane worked off');
    assert.deepEqual(work.started, ['a1', 'a1', 'a2', 'a3']);
  });

  it('lets another key start while a run waits for a shared commit, never the same key', async () => {
    const { settled, work, lanes, add } = manualLanes(1);
    add(['a1', 'a2', 'b1', 'c1']);
    assert.deepEqual(work.started, ['a1'], 'one lane');
    work.slots.get('a1')?.waiting();
    await waitUntil(() => work.started.includes('b1'), 'b1 starts while a1 waits for its commit');
    assert.deepEqual(work.started, ['a1', 'b1'], 'a2 waits for a1; c1 for a working place');
    work.slots.get('a1')?.working();
    work.slots.get('b1')?.waiting();
    assert.deepEqual(work.started, ['a1', 'b1'], 'a1 works again: still one lane working');
    work.finish('a1');
    await waitUntil(() => work.started.includes('a2'), 'a2 runs once a1 settled');
    assert.deepEqual(work.started, ['a1', 'b1', 'a2'], 'c1 still waits: a2 works');
    work.finish('a2');
    await waitUntil(() => work.started.includes('c1'), 'c1 starts once no lane works');
    for (const name of ['b1', 'c1']) work.finish(name);
    await settlesWithin(lanes.drain(1000), 2000, 'drain');
    assert.deepEqual(settled, [], 'nothing given back');
  });

  it('a run whose place another key took while it waited gives its next delivery a turn, never over concurrency', async () => {
    const { settled, work, lanes, add } = manualLanes(1);
    add(['a1', 'a2', 'b1']);
    work.slots.get('a1')?.waiting();
    await waitUntil(() => work.started.includes('b1'), 'b1 starts while a1 waits for its commit');
    // a1's commit settled while b1 works (as the Redis inbox's mark does after the handler ran).
    work.slots.get('a1')?.working();
    work.finish('a1');
    await waitUntil(() => lanes.buffered() === 2, 'a1 settled');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(work.started, ['a1', 'b1'], 'a2 waits: b1 holds the one working place');
    work.finish('b1');
    await waitUntil(() => work.started.includes('a2'), 'a2 runs once b1 settled');
    work.finish('a2');
    await settlesWithin(lanes.drain(1000), 2000, 'drain');
    assert.deepEqual(settled, [], 'nothing given back');
  });

  it('never runs a key twice at once when its deliveries arrive while its lane empties', async () => {
    const stop = new AbortController();
    const active = new Set<string>();
    const overlaps: string[] = [];
    const order: number[] = [];
    const lanes = createKeyLanes({
      concurrency: 4,
      process: async (d) => {
        const key = d.message.key;
        if (active.has(key)) overlaps.push(`${key}${(d.message.data as { n: number }).n}`);
        active.add(key);
        order.push((d.message.data as { n: number }).n);
        // Settles a few microtasks later, as a run through the pipeline does.
        for (let hop = 0; hop < 3; hop++) await Promise.resolve();
        active.delete(key);
        return true;
      },
      signal: () => stop.signal,
      report: () => {},
    });
    const settled: string[] = [];
    // A key's second delivery comes 0, 1, 2, … microtasks after its first: one of them while its lane has
    // emptied but its run has not settled yet.
    for (let hops = 0; hops <= 12; hops++) {
      lanes.add([delivery('a', 1, settled)]);
      for (let hop = 0; hop < hops; hop++) await Promise.resolve();
      lanes.add([delivery('a', 2, settled)]);
      await waitUntil(() => lanes.buffered() === 0, `both deliveries run (${hops} microtasks apart)`);
    }
    await settlesWithin(lanes.drain(1000), 2000, 'drain');
    assert.deepEqual(overlaps, [], 'one run of the key at a time');
    assert.deepEqual(order, Array.from({ length: 13 }, () => [1, 2]).flat(), 'in arrival order, each once');
  });

  it('a run that waits for a shared commit before its first await still leaves its place to another key', async () => {
    const settled: string[] = [];
    const started: string[] = [];
    const finishers: (() => void)[] = [];
    const stop = new AbortController();
    const lanes = createKeyLanes({
      concurrency: 1,
      // As a transactional inbox with group commits does: the run is queued for the commit at once.
      process: (d, slot) => {
        started.push(d.message.key);
        slot.waiting();
        return new Promise<boolean>((resolve) =>
          finishers.push(() => {
            slot.working();
            resolve(true);
          }),
        );
      },
      signal: () => stop.signal,
      report: () => {},
    });
    lanes.add(['a1', 'b1', 'c1'].map((name) => delivery(name[0] as string, Number(name[1]), settled)));
    assert.deepEqual(started, ['a', 'b', 'c'], 'each waiting run let the next key start');
    assert.equal(lanes.settling(), 3);
    for (const finish of finishers) finish();
    await settlesWithin(lanes.drain(1000), 2000, 'drain');
    await waitUntil(() => lanes.buffered() === 0, 'the lanes emptied');
    stop.abort();
  });

  describe('visibility', () => {
    /** A delivery that records its extensions (`a2 900`: a2 extended by 900 ms) in `log`. */
    const extending = (name: string, log: string[]): Delivery => ({
      ...delivery(name[0] as string, Number(name[1]), []),
      extend: async (ms) => void log.push(`${name} ${ms}`),
    });

    it('a delivery whose turn comes a third of the visibility timeout or more after it was set is extended by it before it runs', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
      const log: string[] = [];
      const work = manualProcess();
      const stop = new AbortController();
      const lanes = createKeyLanes({
        concurrency: 1,
        process: (d, slot) => {
          log.push(`run ${d.message.key}${(d.message.data as { n: number }).n}`);
          return work.process(d, slot);
        },
        signal: () => stop.signal,
        report: () => {},
        visibility: 900,
      });
      lanes.add(['a1', 'a2', 'a3'].map((name) => extending(name, log)));
      // a2's turn comes 299 ms after it was fetched: it runs with what it has (over two thirds).
      t.mock.timers.tick(299);
      work.finish('a1');
      await waitUntil(() => work.started.includes('a2'), 'a2 runs');
      // a3's turn comes 300 ms after it was fetched: extended first, so it runs with the whole timeout.
      t.mock.timers.tick(1);
      work.finish('a2');
      await waitUntil(() => work.started.includes('a3'), 'a3 runs');
      assert.deepEqual(log, ['run a1', 'run a2', 'a3 900', 'run a3']);
      work.finish('a3');
      await settlesWithin(lanes.drain(1000), 2000, 'drain');
      stop.abort();
    });

    it('a key held by a delayed retry: its waiting deliveries, and those joining it, never get less than the visibility timeout', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
      const log: string[] = [];
      const work = manualProcess();
      const stop = new AbortController();
      const lanes = createKeyLanes({
        concurrency: 1,
        process: work.process,
        signal: () => stop.signal,
        report: () => {},
        visibility: 900,
      });
      lanes.add(['a1', 'a2'].map((name) => extending(name, log)));
      // a1's retry waits 100 ms: a2, behind it, keeps (at least) the timeout, not 100 ms.
      const extendWaiting = work.slots.get('a1')?.extendWaiting;
      assert.ok(extendWaiting, 'a1 runs');
      await extendWaiting(100);
      // a3 joins during that hold: it was fetched with the whole timeout, which outlasts the hold.
      lanes.add([extending('a3', log)]);
      // A retry that waits 5 s holds the key longer than the timeout: a4, joining, is kept that long.
      await extendWaiting(5000);
      lanes.add([extending('a4', log)]);
      await waitUntil(() => log.includes('a4 5000'), 'a4 extended');
      assert.deepEqual(log, ['a2 900', 'a2 5000', 'a3 5000', 'a4 5000']);
      stop.abort();
      for (const name of [...work.inFlight.keys()]) work.finish(name);
    });
  });
});
