import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '../messaging/message.ts';
import { settledWithin } from './deadline.ts';
import { type BufferedEntry, type BufferSettlement, createDeliveryBuffer } from './delivery-buffer.ts';

const never = new AbortController().signal;

interface TestEntry extends BufferedEntry {
  owned: boolean;
}

const entry = (key: string, n: number, seq?: number): TestEntry => ({
  message: createMessage({ type: 'T', key, data: { n } }),
  partition: 0,
  ...(seq === undefined ? {} : { seq }),
  visibleAt: 0,
  count: 0,
  lease: 0,
  holder: undefined,
  owned: true,
});

/** A buffer whose settler records acks and delays; `moved` says whether a delay reaches the broker. */
function buffer(moved = true) {
  const acked: number[] = [];
  const delayed: number[] = [];
  const created = createDeliveryBuffer<TestEntry>(
    {
      holds: (e) => e.owned,
      ack: (e) => acked.push((e.message.data as { n: number }).n),
      async delay(e) {
        delayed.push((e.message.data as { n: number }).n);
        return moved;
      },
    },
    { parkGraceMs: 5000, holdBelowMs: 100 },
  );
  return { buffer: created, acked, delayed };
}

const numbers = (deliveries: { message: { data: unknown } }[]) =>
  deliveries.map((d) => (d.message.data as { n: number }).n);

describe('delivery buffer (shared by the broker transports)', () => {
  it('with sequences, a key goes out in sequence order whatever the arrival order; one key in one subscription at a time', async () => {
    const { buffer: b, acked } = buffer();
    b.add(entry('a', 2, 12));
    b.add(entry('b', 1, 11));
    b.add(entry('a', 0, 10));
    const first = await b.receive(1, 10, 0, never, 30_000);
    assert.deepEqual(numbers(first), [0, 2, 1]);
    // Another subscription gets nothing of keys in the first one's hands.
    b.add(entry('a', 3, 13));
    assert.deepEqual(numbers(await b.receive(2, 10, 0, never, 30_000)), []);
    for (const d of first) await d.ack();
    assert.deepEqual(acked, [0, 2, 1]);
    assert.deepEqual(numbers(await b.receive(2, 10, 0, never, 30_000)), [3]);
  });

  it('without sequences, arrival order; a message back from a delay goes ahead of the key messages that waited for it', async () => {
    const { buffer: b, delayed } = buffer();
    const first = entry('a', 0);
    b.add(first);
    b.add(entry('a', 1));
    const [d0] = await b.receive(1, 1, 0, never, 30_000);
    await d0?.release(1000);
    assert.deepEqual(delayed, [0]);
    // Parked: the key's later message waits for the delayed one.
    assert.deepEqual(numbers(await b.receive(1, 10, 0, never, 30_000)), []);
    b.add({ ...first, visibleAt: 0, holder: undefined });
    assert.deepEqual(numbers(await b.receive(1, 10, 0, never, 30_000)), [0, 1]);
  });

  it("a message deferred on arrival (deliverAt ahead) parks only its key's later messages, not those held before it", async () => {
    for (const withSeq of [true, false]) {
      const { buffer: b, delayed } = buffer();
      b.add(entry('a', 1, withSeq ? 10 : undefined));
      b.defer(entry('a', 2, withSeq ? 11 : undefined), Date.now() + 3_600_000);
      b.add(entry('a', 3, withSeq ? 12 : undefined));
      assert.deepEqual(delayed, [2]);
      const got = await b.receive(1, 10, 0, never, 30_000);
      assert.deepEqual(numbers(got), [1], `the earlier message goes out, the later one waits (seq: ${withSeq})`);
      for (const d of got) await d.ack();
      assert.deepEqual(numbers(await b.receive(1, 10, 0, never, 30_000)), [], 'the later one still waits');
    }
  });

  it('a park whose delayed message never comes back ends at its time: a waiting receive does not wake every millisecond after', async () => {
    let looks = 0;
    const b = createDeliveryBuffer<TestEntry>(
      {
        holds: (e) => e.owned,
        // An entry this buffer holds but may not hand out now (its partition is being given up): looked at each wake-up.
        offers: (e) => {
          if ((e.message.data as { n: number }).n === 9) looks += 1;
          return (e.message.data as { n: number }).n !== 9;
        },
        ack: () => undefined,
        delay: async () => true,
      },
      { parkGraceMs: 1, holdBelowMs: 1 },
    );
    b.add(entry('a', 0));
    const [d0] = await b.receive(1, 1, 0, never, 30_000);
    await d0?.release(5);
    b.add(entry('b', 9));
    // The delayed message of 'a' never returns (its partition went to another reader); its park ends after ~6 ms.
    looks = 0;
    assert.deepEqual(numbers(await b.receive(1, 10, 150, never, 30_000)), []);
    assert.ok(looks <= 5, `the waiting receive looked ${looks} times in 150 ms`);
  });

  it('a delay the broker refused keeps the message here, in its place; an entry no longer held is never handed out', async () => {
    const { buffer: b } = buffer(false);
    b.add(entry('a', 0));
    b.add(entry('a', 1));
    const lost = entry('c', 9);
    lost.owned = false;
    b.add(lost);
    const [d0] = await b.receive(1, 1, 0, never, 30_000);
    await d0?.release(150);
    const again = await b.receive(1, 10, 2000, never, 30_000);
    assert.deepEqual(numbers(again), [0, 1]);
    b.drop((e) => !e.owned);
    assert.equal(b.heldIn(0), 2);
  });

  it('a delay whose settler rejects (against its contract) keeps the message here, as a refused one, and is told, with no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const told: string[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const b = createDeliveryBuffer<TestEntry>(
        {
          holds: (e) => e.owned,
          ack: () => undefined,
          delay: async () => {
            throw new Error('closed connection');
          },
        },
        { parkGraceMs: 5000, holdBelowMs: 100, onDelayError: (error) => told.push(String(error)) },
      );
      b.add(entry('a', 0));
      b.add(entry('a', 1));
      const [d0] = await b.receive(1, 1, 0, never, 30_000);
      await d0?.release(150);
      const again = await b.receive(1, 10, 2000, never, 30_000);
      assert.deepEqual(numbers(again), [0, 1]);
      assert.deepEqual(told, ['Error: closed connection']);
      assert.equal(await settledWithin(b.settled(1000), 2000), true);
      // An unhandled rejection is reported after the microtasks of its turn: one more turn to see it.
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('settled waits for the deliveries in hands to be settled, up to its bound', async () => {
    const { buffer: b } = buffer();
    b.add(entry('a', 0));
    b.add(entry('b', 1));
    const [d0, d1] = await b.receive(1, 2, 0, never, 30_000);
    b.close();
    let done = false;
    const waiting = b.settled(5000).then(() => {
      done = true;
    });
    await d0?.ack();
    await new Promise(setImmediate);
    assert.equal(done, false, 'one delivery is still out');
    await d1?.release(0);
    await waiting;
    // One never settled: the wait ends at its bound.
    const { buffer: other } = buffer();
    other.add(entry('c', 2));
    await other.receive(1, 1, 0, never, 30_000);
    const began = performance.now();
    await other.settled(300);
    const waited = performance.now() - began;
    assert.ok(waited >= 250 && waited < 2000, `waited ${waited} ms for a bound of 300`);
  });

  it("a delay the broker refused after the buffer was compacted goes back ahead of its key's later messages", async () => {
    // While the release is on its way, acks of others compact the array (at 32 gone making half): the place it
    // was taken from is no longer its place.
    let refuse: (moved: boolean) => void = () => undefined;
    const b = createDeliveryBuffer<TestEntry>(
      {
        holds: (e) => e.owned,
        ack: () => undefined,
        delay: () =>
          new Promise<boolean>((resolve) => {
            refuse = resolve;
          }),
      },
      { parkGraceMs: 5000, holdBelowMs: 100 },
    );
    for (let i = 0; i < 40; i++) b.add(entry(`k${i}`, 100 + i));
    b.add(entry('a', 0));
    b.add(entry('a', 1));
    const out = await b.receive(1, 41, 0, never, 30_000);
    assert.deepEqual(numbers(out).slice(-1), [0], "the others' keys and a's first message");
    const first = out.pop();
    await first?.release(150);
    for (const d of out) await d.ack();
    refuse(false);
    const again = await b.receive(1, 10, 2000, never, 30_000);
    assert.deepEqual(numbers(again), [0, 1], 'a:0 when its delay is over, then a:1');
  });
});

describe('delivery buffer: what an adapter may add', () => {
  it('an ack is awaited and reaches the settler even after the entry stopped being held; a second ack does nothing', async () => {
    const acks: number[] = [];
    let finish: () => void = () => undefined;
    const b = createDeliveryBuffer<TestEntry>(
      {
        holds: (e) => e.owned,
        ack: (e) =>
          new Promise<void>((resolve) => {
            finish = () => {
              acks.push((e.message.data as { n: number }).n);
              resolve();
            };
          }),
        delay: async () => true,
      },
      { parkGraceMs: 5000, holdBelowMs: 100 },
    );
    const held = entry('a', 0);
    b.add(held);
    const [d] = await b.receive(1, 1, 0, never, 30_000);
    held.owned = false;
    let done = false;
    const acking = d?.ack().then(() => (done = true));
    await Promise.resolve();
    assert.equal(done, false, 'the ack waits for the settler');
    finish();
    await acking;
    assert.deepEqual(acks, [0]);
    await d?.ack();
    await Promise.resolve();
    assert.deepEqual(acks, [0], 'settled once');
    assert.equal(b.size(), 0);
  });

  it('a partition stays busy while an ack or a delayed release of its message is on its way to the broker', async () => {
    const arrive: (() => void)[] = [];
    const onTheWay = () => new Promise<void>((resolve) => arrive.push(resolve));
    const b = createDeliveryBuffer<TestEntry>(
      {
        holds: () => true,
        ack: onTheWay,
        delay: async () => {
          await onTheWay();
          return true;
        },
      },
      { parkGraceMs: 5000, holdBelowMs: 100 },
    );
    b.add(entry('a', 0), { ...entry('b', 1), partition: 1 }, { ...entry('c', 2), partition: 2 });
    const [d0, d1, d2] = await b.receive(1, 3, 0, never, 30_000);
    const acked = d0?.ack();
    await d1?.release(60_000);
    assert.equal(b.size(), 1, 'settled here: the acked and the released entries are out of the buffer');
    // A reader hands a partition back once it is not busy: an ack still on its way would reach Redis too late.
    assert.deepEqual(
      [0, 1, 2].map((p) => b.busy(p)),
      [true, true, true],
      'the ack and the release on their way, the third in hands',
    );
    for (const done of arrive.splice(0)) done();
    await acked;
    const last = d2?.ack();
    for (const done of arrive.splice(0)) done();
    await last;
    await b.settled(1000);
    assert.deepEqual(
      [0, 1, 2].map((p) => b.busy(p)),
      [false, false, false],
      'arrived: nothing of them busy',
    );
  });

  it("inFlight lists a partition's deliveries in hands: not those settled, released, or past their visibility", async () => {
    const { buffer: b } = buffer();
    b.add(entry('a', 0), entry('b', 1), entry('c', 2), entry('d', 3), { ...entry('e', 4), partition: 1 });
    const [d0, d1, d2, d3, d4] = await b.receive(1, 5, 0, never, 30_000);
    const numbered = (partition: number) => b.inFlight(partition).map((e) => (e.message.data as { n: number }).n);
    assert.deepEqual(numbered(0), [0, 1, 2, 3]);
    assert.deepEqual(numbered(1), [4]);
    await d0?.ack();
    await d1?.release(0);
    await d2?.release(60_000);
    await d3?.extend(0);
    await d4?.extend(60_000);
    assert.deepEqual(numbered(0), [], 'acked, released now, released for a delay, visibility over');
    assert.deepEqual(numbered(1), [4], 'extended: still out');
  });

  it('an entry not offered stays (its key blocked) while what is out can still be released', async () => {
    let offered = true;
    const b = createDeliveryBuffer<TestEntry>(
      { holds: () => true, offers: () => offered, ack: () => undefined, delay: async () => true },
      { parkGraceMs: 5000, holdBelowMs: 100 },
    );
    b.add(entry('a', 0), entry('a', 1), entry('b', 2));
    const [d0] = await b.receive(1, 1, 0, never, 30_000);
    offered = false;
    assert.deepEqual(numbers(await b.receive(2, 10, 0, never, 30_000)), []);
    await d0?.release(0);
    assert.equal(b.busy(0), false, 'the release went through');
    offered = true;
    assert.deepEqual(numbers(await b.receive(2, 10, 0, never, 30_000)), [0, 1, 2]);
  });

  it('wake makes a waiting receive look again: an entry offered now goes out before the wait ends', async () => {
    let offered = false;
    const b = createDeliveryBuffer<TestEntry>(
      { holds: () => true, offers: () => offered, ack: () => undefined, delay: async () => true },
      { parkGraceMs: 5000, holdBelowMs: 100 },
    );
    b.add(entry('a', 0));
    const waiting = b.receive(1, 1, 60_000, never, 30_000);
    let got: number[] | undefined;
    void waiting.then((deliveries) => (got = numbers(deliveries)));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(got, undefined, 'not offered: the receive waits');
    offered = true;
    b.wake();
    assert.equal(await settledWithin(waiting, 5000), true, 'handed out at the wake, not after 60 s');
    assert.deepEqual(got, [0]);
  });

  it("an unpark (the delayed message will not come back here) wakes a waiting receive: the key's next message goes out then", async () => {
    const { buffer: b } = buffer();
    const first = entry('a', 0);
    b.add(first);
    b.add(entry('a', 1));
    const [d0] = await b.receive(1, 1, 0, never, 30_000);
    await d0?.release(1000);
    // Parked until the delayed message is back, or 1 s + the 5 s grace.
    const waiting = b.receive(1, 10, 60_000, never, 30_000);
    let got: number[] | undefined;
    void waiting.then((deliveries) => (got = numbers(deliveries)));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(got, undefined, 'parked: the receive waits');
    b.unpark((parked) => parked.message.id === first.message.id);
    assert.equal(await settledWithin(waiting, 3000), true, 'handed out at the unpark, not at the park end (6 s)');
    assert.deepEqual(got, [1]);
  });

  it('messageOf gives each hand-out its own message; deliveryFields settle the entry elsewhere', async () => {
    const acked: number[] = [];
    const b = createDeliveryBuffer<TestEntry>(
      {
        holds: () => true,
        ack: (e) => acked.push((e.message.data as { n: number }).n),
        delay: async () => true,
        messageOf: (e) => structuredClone(e.message),
        deliveryFields: (_e, settlement) => ({ settlement }),
      },
      { parkGraceMs: 5000, holdBelowMs: 100 },
    );
    b.add(entry('a', 0), entry('a', 1));
    const [first] = await b.receive(1, 1, 0, never, 30_000);
    (first?.message.data as { n: number }).n = 99;
    await first?.release(0);
    const [again] = await b.receive(1, 1, 0, never, 30_000);
    assert.deepEqual(again?.message.data, { n: 0 }, "the handler's change did not stay");
    const { settlement } = again as unknown as { settlement: BufferSettlement };
    assert.equal(settlement.current(), true);
    // A receiver waiting for the key's next message gets it once the entry is settled elsewhere.
    const waiting = b.receive(2, 1, 2000, never, 30_000);
    settlement.settled();
    assert.deepEqual(numbers(await waiting), [1]);
    assert.equal(settlement.current(), false);
    await again?.ack();
    assert.deepEqual(acked, [], "the delivery's own ack does nothing after");
  });

  it('removals keep the order of what is left; drop returns what it forgot', async () => {
    const { buffer: b } = buffer();
    const all = Array.from({ length: 100 }, (_, n) => ({ ...entry(`k${n}`, n), partition: n % 2 }));
    b.add(...all);
    // Two in three acked: past half of the array, the acked entries are compacted away meanwhile.
    for (const d of await b.receive(1, 100, 0, never, 30_000))
      if ((d.message.data as { n: number }).n % 3 !== 0) await d.ack();
    assert.equal(b.size(), 34);
    const dropped = b.drop((e) => e.partition === 1);
    assert.ok(dropped.every((e) => e.partition === 1 && e.gone));
    assert.equal(b.heldIn(1), 0);
    const left = b.held().map((e) => (e.message.data as { n: number }).n);
    assert.deepEqual(
      left,
      all.map((_, n) => n).filter((n) => n % 2 === 0 && n % 3 === 0),
    );
  });
});
