import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReceiveWakeups } from './receive-wakeups.ts';

const never = new AbortController().signal;

describe('receive wake-ups', () => {
  it('a wake that came after the generation was read ends the wait at once', async () => {
    const wakeups = createReceiveWakeups();
    const waits = wakeups.waits('orders');
    const seen = waits.generation();
    wakeups.wake('orders'); // while the look was in flight
    const started = Date.now();
    await waits.wait(seen, 60_000, never);
    assert.ok(Date.now() - started < 5_000, 'the wait did not end at once');
  });

  it('wakes only the channel woken; wakeAll and a subscription close end every wait of theirs', async () => {
    const wakeups = createReceiveWakeups();
    const orders = wakeups.waits('orders');
    const other = wakeups.waits('payments');
    let otherEnded = false;
    const otherWait = other.wait(other.generation(), 60_000, never).then(() => {
      otherEnded = true;
    });
    const ordersWait = orders.wait(orders.generation(), 60_000, never);
    wakeups.wake('orders');
    await ordersWait;
    assert.equal(otherEnded, false, 'a wake of another channel ended this wait');
    other.close();
    await otherWait;
    const afterAll = orders.wait(orders.generation(), 60_000, never);
    wakeups.wakeAll();
    await afterAll;
  });

  it('after stop, every wait returns at once', async () => {
    const wakeups = createReceiveWakeups();
    wakeups.stop();
    const waits = wakeups.waits('orders');
    const started = Date.now();
    await waits.wait(waits.generation(), 60_000, never);
    assert.ok(Date.now() - started < 5_000);
  });
});
