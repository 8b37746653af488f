import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeadLetterFailure } from './consumer-dead-letters.ts';
import type { ConsumerErrorStage } from './consumer-options.ts';
import type { RetryPolicy } from './consumer-ports.ts';
import { retryStep } from './consumer-retry.ts';
import { StepFailure } from './consumer-step.ts';
import { createMessage } from './message.ts';
import type { Delivery } from './transport.ts';

function setup(
  policy: RetryPolicy,
  options: {
    holdOnDelay?: boolean;
    keepDelayOnStop?: boolean;
    stop?: AbortController;
    now?: () => number;
    sleep?: (ms: number) => Promise<void>;
  } = {},
) {
  const settled: string[] = [];
  const reported: ConsumerErrorStage[] = [];
  const deadLettered: DeadLetterFailure[] = [];
  const slept: number[] = [];
  const stop = options.stop ?? new AbortController();
  const stats = { retries: 0, discarded: 0 };
  const delivery: Delivery = {
    message: createMessage({ type: 'Charged', data: {}, key: 'k' }),
    deliveryCount: 1,
    ack: async () => void settled.push('ack'),
    release: async (ms) => void settled.push(`release ${ms}`),
    extend: async (ms) => void settled.push(`extend ${ms}`),
  };
  const withRetries = retryStep({
    policy,
    holdOnDelay: options.holdOnDelay ?? true,
    keepDelayOnStop: options.keepDelayOnStop ?? true,
    visibility: 30_000,
    sleep: async (ms) => {
      slept.push(ms);
      await options.sleep?.(ms);
    },
    now: options.now ?? (() => 1_000),
    signal: () => stop.signal,
    report: (_error, stage) => void reported.push(stage),
    stats,
    deadLetter: async (_delivery, failure) => void deadLettered.push(failure),
  });
  return { withRetries, delivery, settled, reported, deadLettered, slept, stats };
}

/** An attempt that fails `times` times, then returns 'applied'. */
const failing = (times: number) => {
  let tries = 0;
  return async () => {
    tries += 1;
    if (tries <= times) throw new Error(`try ${tries} failed`);
    return 'applied' as const;
  };
};

describe('retryStep', () => {
  it('retries after the delay the policy gives, the delivery kept invisible meanwhile, until the handler succeeds', async () => {
    const t = setup(() => ({ action: 'retry', delayMs: 50 }));
    assert.equal(await t.withRetries(t.delivery, failing(2)), 'applied');
    assert.deepEqual(t.settled, ['extend 30050', 'extend 30050']);
    assert.deepEqual(t.slept, [50, 50]);
    assert.deepEqual(t.reported, ['handler', 'handler']);
    assert.equal(t.stats.retries, 2);
  });

  it('dead-letters with the attempts and the first failure, discards with an ack', async () => {
    const dead = setup((error, attempt) =>
      attempt < 3 ? { action: 'retry', delayMs: 0 } : { action: 'dead-letter', reason: String(error) },
    );
    assert.equal(await dead.withRetries(dead.delivery, failing(5)), 'settled');
    assert.equal(dead.deadLettered.length, 1);
    const { error, reason, attempts, firstFailureAt } = dead.deadLettered[0] as DeadLetterFailure;
    assert.equal((error as Error).message, 'try 3 failed');
    assert.deepEqual([reason, attempts, firstFailureAt], ['Error: try 3 failed', 3, 1_000]);
    const discard = setup(() => ({ action: 'discard' }));
    assert.equal(await discard.withRetries(discard.delivery, failing(1)), 'settled');
    assert.deepEqual(discard.settled, ['ack']);
    assert.equal(discard.stats.discarded, 1);
  });

  it('a policy that throws or answers nonsense is reported and dead-letters the message', async () => {
    for (const policy of [
      () => {
        throw new Error('policy bug');
      },
      () => ({ action: 'retry' }) as never,
    ]) {
      const t = setup(policy);
      assert.equal(await t.withRetries(t.delivery, failing(1)), 'settled');
      assert.deepEqual(t.reported, ['handler', 'policy']);
      assert.match(t.deadLettered[0]?.reason ?? '', /^the retry policy failed: /);
    }
  });

  it("a policy's delay past a timer's limit (2147483647 ms) is reported and dead-letters the message, never waited as 1 ms", async () => {
    const t = setup(() => ({ action: 'retry', delayMs: 2 ** 31 }));
    assert.equal(await t.withRetries(t.delivery, failing(1)), 'settled');
    assert.deepEqual([t.slept, t.settled, t.reported], [[], [], ['handler', 'policy']]);
    assert.match(t.deadLettered[0]?.reason ?? '', /delayMs 2147483648: a retry waits at most 2147483647 ms/);
  });

  it('a delayed retry dead-letters when the key must move on; one due while stopping gives the message back with its delay', async () => {
    const moveOn = setup(() => ({ action: 'retry', delayMs: 10 }), { holdOnDelay: false });
    assert.equal(await moveOn.withRetries(moveOn.delivery, failing(1)), 'settled');
    assert.equal(moveOn.deadLettered[0]?.reason, 'delayed retry, key moved on');
    const stop = new AbortController();
    stop.abort();
    const stopping = setup(() => ({ action: 'retry', delayMs: 700 }), { stop });
    assert.equal(await stopping.withRetries(stopping.delivery, failing(1)), 'settled');
    assert.deepEqual(stopping.settled, ['release 700']);
  });

  it('a stop during the delay gives the message back with what is left of it, never sooner', async () => {
    const clock = { t: 1_000 };
    const stop = new AbortController();
    const t = setup(() => ({ action: 'retry', delayMs: 1000 }), {
      stop,
      now: () => clock.t,
      // 300 ms into the delay the consumer stops: the sleep ends at once.
      sleep: async () => {
        clock.t += 300;
        stop.abort();
      },
    });
    assert.equal(await t.withRetries(t.delivery, failing(1)), 'settled');
    assert.deepEqual(t.settled, ['extend 31000', 'release 700']);
  });

  it('where a delayed release holds its key in this process only, a stop gives the message back due at once (its key keeps its order)', async () => {
    const clock = { t: 1_000 };
    const stop = new AbortController();
    const t = setup(() => ({ action: 'retry', delayMs: 1000 }), {
      stop,
      keepDelayOnStop: false,
      now: () => clock.t,
      sleep: async () => {
        clock.t += 300;
        stop.abort();
      },
    });
    assert.equal(await t.withRetries(t.delivery, failing(1)), 'settled');
    assert.deepEqual(t.settled, ['extend 31000', 'release 0']);
    const stopped = new AbortController();
    stopped.abort();
    const before = setup(() => ({ action: 'retry', delayMs: 700 }), { stop: stopped, keepDelayOnStop: false });
    assert.equal(await before.withRetries(before.delivery, failing(1)), 'settled');
    assert.deepEqual(before.settled, ['release 0']);
  });

  it("a step's failure (the inbox) passes through untouched: not the handler's, not put to the policy", async () => {
    const t = setup(() => assert.fail('the policy is not asked'));
    const failure = new StepFailure('inbox', new Error('inbox down'));
    await assert.rejects(
      t.withRetries(t.delivery, async () => {
        throw failure;
      }),
      (error) => error === failure,
    );
    assert.deepEqual(t.reported, []);
  });
});
