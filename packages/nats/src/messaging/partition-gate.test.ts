import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JsMsg } from '@nats-io/jetstream';
import { createPartitionGate } from './partition-gate.ts';

/** The part of a JetStream message the gate touches: its stream sequence, nak and working. */
const message = (seq: number, log: string[]) =>
  ({ seq, nak: () => log.push(`nak ${seq}`), working: () => log.push(`working ${seq}`) }) as unknown as JsMsg;

/**
 * A gate over a consumer whose pending count the test sets; what it passes on is recorded, and counts as this
 * process's with the sequences in `also` (naked with a delay, say).
 */
function gateWith(pending: { ackPending: number; delivered: number }, also: number[] = []) {
  const passed: number[] = [];
  const gate = createPartitionGate({
    ackPending: async () => pending.ackPending,
    deliveredSeq: async () => pending.delivered,
    ours: () => [...passed, ...also],
    pass: (raw) => passed.push(raw.seq),
  });
  return { gate, passed };
}

describe('the partition gate', () => {
  it('open when nothing is pending elsewhere: messages pass at once', async () => {
    const { gate, passed } = gateWith({ ackPending: 0, delivered: 10 });
    await gate.close();
    assert.equal(gate.isOpen(), true);
    gate.offer(message(11, []));
    assert.deepEqual(passed, [11]);
  });

  it('after a takeover, holds everything until the inherited messages are back, then passes them in stream order', async () => {
    // The previous holder died holding 4 and 6 unacknowledged.
    const pending = { ackPending: 2, delivered: 6 };
    const { gate, passed } = gateWith(pending);
    await gate.close();
    assert.equal(gate.isOpen(), false);
    const log: string[] = [];
    gate.offer(message(7, log)); // new, pulled before the ack wait ended
    pending.ackPending = 3;
    await gate.check();
    assert.deepEqual(passed, [], 'a new message passed while 4 and 6 were pending elsewhere');
    assert.equal(gate.missing(), 2);
    gate.offer(message(6, log)); // back after the ack wait, out of order
    gate.offer(message(4, log));
    await gate.check();
    assert.equal(gate.isOpen(), true);
    assert.deepEqual(passed, [4, 6, 7], 'in stream order once nothing is pending elsewhere');
  });

  it('counts a message of its own that comes back while it waits once: it stays closed while another is pending', async () => {
    // After a reconnect: 3 was naked with a delay (still this process's), 4 went to a pull lost with the
    // connection (pending at the server until its ack wait).
    const naked = [3];
    const pending = { ackPending: 2, delivered: 4 };
    const { gate, passed } = gateWith(pending, naked);
    await gate.close();
    assert.equal(gate.isOpen(), false);
    assert.equal(gate.missing(), 1);
    const log: string[] = [];
    gate.offer(message(3, log)); // back from its delay, naked still until it passes
    await gate.check();
    assert.equal(gate.isOpen(), false, 'opened while 4 was pending at the server');
    assert.equal(gate.missing(), 1);
    gate.offer(message(3, log)); // delivered again meanwhile (its ack wait passed): still one message
    await gate.check();
    assert.equal(gate.isOpen(), false, 'opened on a message delivered twice');
    gate.offer(message(4, log)); // back after its ack wait
    naked.length = 0;
    await gate.check();
    assert.equal(gate.isOpen(), true);
    assert.deepEqual(passed, [3, 3, 4], 'in stream order, the later delivery of 3 after the earlier');
  });

  it('keeps its waiting messages alive and gives them back when the partition is given up', async () => {
    const { gate, passed } = gateWith({ ackPending: 5, delivered: 3 });
    await gate.close();
    const log: string[] = [];
    gate.offer(message(4, log));
    gate.working();
    gate.giveBack();
    assert.deepEqual(log, ['working 4', 'nak 4']);
    assert.deepEqual(passed, []);
    assert.equal(gate.size(), 0);
  });
});
