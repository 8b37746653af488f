import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keptOnSuccess } from './kept-on-success.ts';

describe('keptOnSuccess', () => {
  it('shares a key’s work, keeps a success, forgets a failure so the next call runs again', async () => {
    const kept = keptOnSuccess<number>();
    let runs = 0;
    const succeed = async () => ++runs;
    const first = kept.get('a', succeed);
    assert.equal(kept.get('a', succeed), first, 'a call while it runs shares it');
    assert.equal(await first, 1);
    assert.equal(await kept.get('a', succeed), 1, 'kept');
    assert.equal(await kept.get('b', succeed), 2, 'per key');

    let fail = true;
    const flaky = async () => {
      runs += 1;
      if (fail) throw new Error('down');
      return runs;
    };
    await assert.rejects(kept.get('c', flaky), /down/);
    fail = false;
    assert.equal(await kept.get('c', flaky), 4, 'tried again after the failure');
    kept.forget('c');
    assert.equal(await kept.get('c', flaky), 5, 'forgotten on request');
  });

  it('a failure forgets only its own promise, not one started after a forget', async () => {
    const kept = keptOnSuccess<string>();
    let reject!: (error: Error) => void;
    const failing = kept.get('k', () => new Promise<string>((_, r) => (reject = r)));
    kept.forget('k');
    const next = kept.get('k', async () => 'second');
    reject(new Error('late failure'));
    await assert.rejects(failing, /late failure/);
    assert.equal(
      kept.get('k', async () => 'third'),
      next,
      'the second is still kept',
    );
  });
});
