import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { answerWithin, settledWithin } from './deadline.ts';

/** A promise settled by hand, for waits whose outcome the test decides. */
function manual<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('settledWithin', () => {
  it('is true for a promise that resolves or rejects in time, false for one that does not', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    assert.equal(await settledWithin(Promise.resolve(1), 1000), true);
    assert.equal(await settledWithin(Promise.reject(new Error('no')), 1000), true);
    const pending = manual<void>();
    const verdict = settledWithin(pending.promise, 1000);
    t.mock.timers.tick(999);
    pending.resolve();
    assert.equal(await verdict, true);
    const silent = manual<void>();
    const late = settledWithin(silent.promise, 1000);
    t.mock.timers.tick(1000);
    assert.equal(await late, false);
    // A rejection after the deadline is not left unhandled (the test run would fail on it).
    silent.reject(new Error('after the deadline'));
  });

  it('clears its timer: nothing keeps the process waiting after an answer', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.equal(await settledWithin(Promise.resolve(), 60_000), true);
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, before);
  });

  it('treats a negative wait as none', async () => {
    assert.equal(await settledWithin(new Promise(() => undefined), -5), false);
  });
});

describe('answerWithin', () => {
  it("gives the answer, or the work's own error, when it comes in time", async () => {
    assert.equal(await answerWithin(Promise.resolve('PONG'), 1000, () => new Error('late')), 'PONG');
    await assert.rejects(
      answerWithin(Promise.reject(new TypeError('refused')), 1000, () => new Error('late')),
      {
        name: 'TypeError',
        message: 'refused',
      },
    );
  });

  it("rejects with late()'s error at the deadline, then runs afterLate, whose drop cannot win over that error", async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const silent = manual<string>();
    const order: string[] = [];
    const answer = answerWithin(
      silent.promise,
      500,
      () => {
        order.push('late');
        return new RangeError('no answer within 500 ms');
      },
      () => {
        order.push('afterLate');
        // Dropping the connection fails what waited on it, at once.
        silent.reject(new Error('connection destroyed'));
      },
    );
    t.mock.timers.tick(499);
    assert.deepEqual(order, []);
    t.mock.timers.tick(1);
    await assert.rejects(answer, { name: 'RangeError', message: 'no answer within 500 ms' });
    assert.deepEqual(order, ['late', 'afterLate']);
  });

  it('clears its timer once answered', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await answerWithin(Promise.resolve(), 60_000, () => new Error('late'));
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, before);
  });
});
