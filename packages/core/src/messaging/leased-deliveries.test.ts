import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLeasedDeliveries } from './leased-deliveries.ts';

describe('leased deliveries', () => {
  const row = (log: string[], released = true) => ({
    ack: () => {
      log.push('ack');
    },
    release: (ms: number) => {
      log.push(`release ${ms}`);
      return released;
    },
    extend: (ms: number) => {
      log.push(`extend ${ms}`);
    },
  });

  it('wakes once a key has nothing in flight, and after a release that made a row due', async () => {
    let wakes = 0;
    const deliveries = createLeasedDeliveries(() => {
      wakes += 1;
    });
    const log: string[] = [];
    const first = deliveries.handOut('k', row(log));
    const second = deliveries.handOut('k', row(log, false));
    assert.equal(deliveries.keysInFlight, 1);
    await first.ack();
    await first.ack(); // a second settle counts once
    assert.equal(wakes, 0, 'woke while the key still had a delivery in flight');
    await second.release(Number.NaN);
    assert.deepEqual(log, ['ack', 'ack', 'release 0']);
    assert.equal(wakes, 1, 'the freed key woke once; the release that changed nothing did not');
    assert.equal(deliveries.keysInFlight, 0);
  });

  it('after an ack committed in an inbox transaction, ack, release and extend do nothing', async () => {
    let wakes = 0;
    const deliveries = createLeasedDeliveries(() => {
      wakes += 1;
    });
    const log: string[] = [];
    const settlement = deliveries.handOut('k', row(log));
    settlement.committed();
    assert.equal(wakes, 1);
    await settlement.extend(10);
    await settlement.release(10);
    await settlement.ack();
    assert.deepEqual(log, []);
    assert.equal(wakes, 1);
  });
});
