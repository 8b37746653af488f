import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '../messaging/message.ts';
import { type BufferedEntry, createDeliveryBuffer } from './delivery-buffer.ts';

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
});
