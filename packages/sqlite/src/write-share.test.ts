import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Sqlite from 'better-sqlite3';
import { DEFAULT_MAX_WRITE_HOLD_MS, shareWriteLock, WRITE_PAUSE_MS } from './write-share.ts';

/** A share on a connection of its own, on a fake clock: `hold(ms)` is a transaction that held the lock `ms`. */
function fakeShare(maxHoldMs?: number) {
  let clock = 0;
  const pauses: number[] = [];
  const share = shareWriteLock(new Sqlite(':memory:'), {
    ...(maxHoldMs === undefined ? {} : { maxHoldMs }),
    now: () => clock,
    sleep: async (ms) => {
      pauses.push(ms);
      clock += ms;
    },
  });
  return {
    pauses,
    /** Time passing between transactions (the lock free). */
    idle: (ms: number) => {
      clock += ms;
    },
    /** One write: its turn, then a transaction holding the lock `ms`. */
    hold: async (ms: number) => {
      await share.turn();
      share.write(() => {
        clock += ms;
      });
    },
  };
}

describe('shareWriteLock', () => {
  it('back to back, the lock is left free for a pause once it was held maxHoldMs, then again after as long', async () => {
    const share = fakeShare();
    for (let i = 0; i < DEFAULT_MAX_WRITE_HOLD_MS / 100; i += 1) await share.hold(100);
    assert.deepEqual(share.pauses, [], 'no pause before maxHoldMs is reached');
    await share.hold(100);
    assert.deepEqual(share.pauses, [WRITE_PAUSE_MS]);
    for (let i = 0; i < 10; i += 1) await share.hold(100);
    assert.deepEqual(share.pauses, [WRITE_PAUSE_MS, WRITE_PAUSE_MS]);
  });

  it('a transaction longer than maxHoldMs is followed by a pause every time', async () => {
    const share = fakeShare(500);
    await share.hold(800);
    await share.hold(800);
    await share.hold(800);
    assert.deepEqual(share.pauses, [WRITE_PAUSE_MS, WRITE_PAUSE_MS]);
  });

  it('time the lock was free already counts towards the pause', async () => {
    const share = fakeShare(300);
    await share.hold(300);
    share.idle(100);
    await share.hold(10);
    assert.deepEqual(share.pauses, [WRITE_PAUSE_MS - 100]);
  });

  it('a writer that leaves the lock free as long as it holds it never pauses (live, between appends)', async () => {
    const share = fakeShare(100);
    // 20 s of batches of 5 ms, each 5 ms after the last: the lock is free half of the time.
    for (let i = 0; i < 2000; i += 1) {
      await share.hold(5);
      share.idle(5);
    }
    assert.deepEqual(share.pauses, []);
  });

  it('a gap as long as a pause starts a new run', async () => {
    const share = fakeShare(1000);
    for (let i = 0; i < 9; i += 1) await share.hold(100);
    share.idle(WRITE_PAUSE_MS);
    for (let i = 0; i < 9; i += 1) await share.hold(100);
    assert.deepEqual(share.pauses, []);
  });

  it('the writers on one connection hold its lock together', async () => {
    let clock = 0;
    const pauses: number[] = [];
    const db = new Sqlite(':memory:');
    const options = {
      maxHoldMs: 200,
      now: () => clock,
      sleep: async (ms: number) => {
        pauses.push(ms);
        clock += ms;
      },
    };
    const [first, second] = [shareWriteLock(db, options), shareWriteLock(db, options)];
    for (const share of [first, second, first]) {
      await share.turn();
      share.write(() => {
        clock += 100;
      });
    }
    assert.deepEqual(pauses, [WRITE_PAUSE_MS], 'the third write waited: two held the lock 200 ms between them');
    db.close();
  });
});

describe('shareWriteLock for writers that schedule their own turns', () => {
  /** A share on a connection of its own, on a fake clock, without sleeping: the caller waits `pauseLeft`. */
  function scheduled(maxHoldMs: number) {
    let clock = 0;
    const db = new Sqlite(':memory:');
    const share = shareWriteLock(db, { maxHoldMs, now: () => clock });
    return {
      share,
      pass: (ms: number) => {
        clock += ms;
      },
      db,
    };
  }

  it('pauseLeft is 0 until the run held the lock maxHoldMs, then what is left of the pause', () => {
    const { share, pass, db } = scheduled(200);
    share.write(() => pass(150));
    assert.equal(share.pauseLeft(), 0);
    share.write(() => pass(100));
    assert.equal(share.pauseLeft(), WRITE_PAUSE_MS);
    pass(100);
    assert.equal(share.pauseLeft(), WRITE_PAUSE_MS - 100);
    pass(WRITE_PAUSE_MS - 100);
    assert.equal(share.pauseLeft(), 0, 'the pause is over');
    share.write(() => pass(150));
    assert.equal(share.pauseLeft(), 0, 'a new run began after the pause');
    db.close();
  });

  it('holdLeft counts the transaction in progress: a group commit ends once it reaches 0', () => {
    const { share, pass, db } = scheduled(200);
    share.write(() => pass(50));
    const seen: number[] = [];
    share.write(() => {
      for (let run = 0; run < 10 && (run === 0 || share.holdLeft() > 0); run += 1) {
        seen.push(share.holdLeft());
        pass(60);
      }
    });
    assert.deepEqual(seen, [150, 90, 30], 'three runs: 50 ms before, then 60 ms each');
    assert.equal(share.holdLeft(), -30);
    assert.equal(share.pauseLeft(), WRITE_PAUSE_MS);
    db.close();
  });
});
