import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testTransportConformance } from '../testing/transport-conformance.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import { createMessage } from './message.ts';
import type { Delivery } from './transport.ts';

testTransportConformance({ name: 'in-memory', createTransport: () => getInMemoryTransport() });

describe('in-memory transport hand-out order', () => {
  const signal = new AbortController().signal;
  const ids = (deliveries: readonly Delivery[]) => deliveries.map((d) => d.message.id);
  const message = (id: string, key: string) => createMessage({ id, type: 'T', data: {}, key });

  it('hands out in publish order across keys, a key coming back with its next message in its place', async () => {
    const transport = getInMemoryTransport();
    await transport.declareSubscription('t', 'g');
    await transport.publish('t', [message('a1', 'a'), message('a2', 'a'), message('b1', 'b'), message('c1', 'c')]);
    const subscription = transport.subscribe('t', 'g');
    const first = await subscription.receive(1, 0, signal);
    assert.deepEqual(ids(first), ['a1']);
    await first[0]?.ack();
    // a2 was published before b1: it goes out first once a1 is settled.
    const second = await subscription.receive(2, 0, signal);
    assert.deepEqual(ids(second), ['a2', 'b1']);
    assert.deepEqual(ids(await subscription.receive(5, 0, signal)), ['c1'], 'a and b are in flight');
    assert.deepEqual(await transport.backlog?.('t', 'g').then((b) => b.messages), 3);
    await transport.close();
  });

  it('keeps a key whose earliest message is in flight out of a hand-out, even when its later messages are due', async () => {
    let clock = 1_000;
    const transport = getInMemoryTransport({ now: () => clock });
    await transport.declareSubscription('t', 'g');
    await transport.publish('t', [message('a1', 'a'), message('b1', 'b'), message('a2', 'a'), message('b2', 'b')]);
    const subscription = transport.subscribe('t', 'g', { visibilityTimeoutMs: 100 });
    const both = await subscription.receive(10, 0, signal);
    assert.deepEqual(ids(both), ['a1', 'b1', 'a2', 'b2'], 'each key with its later messages, in publish order');
    await both[0]?.release(0);
    // a1 is due again, a2 still in flight: only a1 goes out.
    assert.deepEqual(ids(await subscription.receive(10, 0, signal)), ['a1']);
    clock += 101;
    // Every lease expired: everything comes again, in publish order.
    assert.deepEqual(ids(await subscription.receive(10, 0, signal)), ['a1', 'b1', 'a2', 'b2']);
    await transport.close();
  });

  it('hands out copies as a durable transport would: JSON data, and no change of one reaches another', async () => {
    const transport = getInMemoryTransport();
    await transport.declareSubscription('t', 'a');
    await transport.declareSubscription('t', 'b');
    const at = new Date('2026-01-01T00:00:00Z');
    const published = createMessage({ type: 'Paid', key: 'k', data: { at, n: 1, gone: undefined } });
    await transport.publish('t', [published]);
    (published.data as { n: number }).n = 99; // the publisher's change after publishing
    const [a] = await transport.subscribe('t', 'a').receive(1, 0, signal);
    const [b] = await transport.subscribe('t', 'b').receive(1, 0, signal);
    assert.ok(a && b);
    const data = a.message.data as { at: unknown; n: number };
    // Before: the publisher's own object, Date and all, shared by every group.
    assert.equal(data.at, '2026-01-01T00:00:00.000Z', 'a Date in the data arrives as its ISO string');
    assert.equal(data.n, 1);
    assert.ok(!('gone' in data), 'an undefined property is not there');
    data.n = 42; // group a's handler changes its message
    assert.equal((b.message.data as { n: number }).n, 1, "group b's copy is its own");
    assert.ok(a.message.createdAt instanceof Date, 'the envelope dates are Dates, as from JSON storage');
    await transport.close();
  });
});
