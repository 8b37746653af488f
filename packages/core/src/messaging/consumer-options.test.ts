import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NonRetryableError, ValidationError } from '../errors/index.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { type ConsumerOptions, createConsumer } from './consumer.ts';
import { retryPolicyFromShorthand } from './consumer-options.ts';
import {
  type DeadLetterStore,
  defaultRetryPolicy,
  getInMemoryDeadLetterStore,
  getInMemoryInbox,
  type Inbox,
} from './consumer-ports.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import { createMessage } from './message.ts';
import type { Transport } from './transport.ts';

const base = (transport: Transport = getInMemoryTransport()) => ({
  name: 'billing',
  topic: 'orders',
  transport,
  pollMs: 10,
  handler: () => undefined,
});

const issuesOf = (work: () => unknown): { path: string; message: string }[] => {
  try {
    work();
  } catch (error) {
    assert.ok(error instanceof ValidationError, `a ValidationError, got ${String(error)}`);
    return error.issues as { path: string; message: string }[];
  }
  assert.fail('expected a ValidationError');
};

/** A fake clock's sleep: records each wait and returns at once (after a turn of the event loop). */
const recordingSleep = (waits: number[]) => async (ms: number) => {
  waits.push(ms);
  await new Promise((resolve) => setImmediate(resolve));
};

describe('consumer options', () => {
  it('unknown names and wrong kinds are one ValidationError naming each option', () => {
    const issues = issuesOf(() =>
      createConsumer({
        ...base(),
        concurency: 4,
        concurrency: 'eight',
        pollMs: '100',
        onDelayedRetry: 'skip',
      } as unknown as ConsumerOptions),
    );
    const paths = issues.map((i) => i.path).sort();
    assert.deepEqual(paths, [
      'createConsumer.concurency',
      'createConsumer.concurrency',
      'createConsumer.onDelayedRetry',
      'createConsumer.pollMs',
    ]);
    assert.match(
      issues.find((i) => i.path === 'createConsumer.concurency')?.message ?? '',
      /did you mean 'concurrency'/,
    );
    assert.match(issues.find((i) => i.path === 'createConsumer.concurrency')?.message ?? '', /got 'eight'/);
  });

  it('required options are named; a null options object is a ValidationError, not a TypeError', () => {
    const issues = issuesOf(() => createConsumer({ topic: 'orders' } as unknown as ConsumerOptions));
    assert.deepEqual(issues.map((i) => i.path).sort(), [
      'createConsumer.handler',
      'createConsumer.name',
      'createConsumer.transport',
    ]);
    issuesOf(() => createConsumer(null as unknown as ConsumerOptions));
  });

  it('a retry policy given as an array is refused at creation, pointing at retryDelay', () => {
    const [issue] = issuesOf(() =>
      createConsumer({ ...base(), retryPolicy: [1000, 5000] as unknown as ConsumerOptions['retryPolicy'] }),
    );
    assert.equal(issue?.path, 'createConsumer.retryPolicy');
    assert.match(issue?.message ?? '', /got an array.*retryDelay/);
  });

  it('the shorthand and a retryPolicy together are refused; so is a malformed retryDelay', () => {
    const [both] = issuesOf(() => createConsumer({ ...base(), retryPolicy: defaultRetryPolicy(), maxRetries: 3 }));
    assert.match(both?.message ?? '', /either retryPolicy or the maxRetries\/retryDelay shorthand/);
    assert.equal(
      issuesOf(() => createConsumer({ ...base(), retryDelay: [1000, -1] }))[0]?.path,
      'createConsumer.retryDelay',
    );
    assert.equal(issuesOf(() => createConsumer({ ...base(), maxRetries: 1.5 }))[0]?.path, 'createConsumer.maxRetries');
  });

  it("a retry delay past a timer's limit (2147483647 ms) is refused, naming the option; the default policy's jitter stays under it", () => {
    for (const retryDelay of [2 ** 31, [1000, 2 ** 31]]) {
      const [issue] = issuesOf(() => createConsumer({ ...base(), retryDelay }));
      assert.equal(issue?.path, 'createConsumer.retryDelay');
      assert.match(issue?.message ?? '', /from 0 to 2147483647/);
    }
    assert.doesNotThrow(() => createConsumer({ ...base(), retryDelay: 2 ** 31 - 1 }));
    assert.equal(issuesOf(() => defaultRetryPolicy({ delaysMs: [2 ** 31] }))[0]?.path, 'defaultRetryPolicy.delaysMs');
    const longest = defaultRetryPolicy({ immediate: 0, delaysMs: [2 ** 31 - 1], random: () => 1 });
    assert.deepEqual(longest(new Error('down'), 1, createMessage({ type: 'OrderPlaced', data: {} })), {
      action: 'retry',
      delayMs: 2 ** 31 - 1,
    });
  });

  it('defaultRetryPolicy checks its options the same way', () => {
    const issues = issuesOf(() =>
      defaultRetryPolicy({ delays: [1] } as unknown as Parameters<typeof defaultRetryPolicy>[0]),
    );
    assert.equal(issues[0]?.path, 'defaultRetryPolicy.delays');
    assert.match(issues[0]?.message ?? '', /did you mean 'delaysMs'/);
    assert.equal(issuesOf(() => defaultRetryPolicy({ immediate: -1 }))[0]?.path, 'defaultRetryPolicy.immediate');
    assert.equal(issuesOf(() => defaultRetryPolicy({ jitter: 2 }))[0]?.path, 'defaultRetryPolicy.jitter');
  });

  it('a pollMs that is not a whole number from 1 to 2147483647 is refused, naming the option (a wait of 0 polls without pause; a longer one is a timer of 1 ms)', () => {
    for (const pollMs of [0, 0.5, -1, 2 ** 31]) {
      const [issue] = issuesOf(() => createConsumer({ ...base(), pollMs }));
      assert.equal(issue?.path, 'createConsumer.pollMs', `pollMs ${pollMs}`);
      assert.match(issue?.message ?? '', /must be an integer from 1 to 2147483647/);
    }
    assert.doesNotThrow(() => createConsumer({ ...base(), pollMs: 1 }));
  });

  it('a drainTimeoutMs outside 0 to 2147483647 is refused, naming the option (a longer one is a timer of 1 ms: stop would give up at once)', () => {
    for (const drainTimeoutMs of [-1, 2 ** 31, Number.POSITIVE_INFINITY]) {
      const [issue] = issuesOf(() => createConsumer({ ...base(), drainTimeoutMs }));
      assert.equal(issue?.path, 'createConsumer.drainTimeoutMs', `drainTimeoutMs ${drainTimeoutMs}`);
    }
    for (const drainTimeoutMs of [0, 2 ** 31 - 1])
      assert.doesNotThrow(() => createConsumer({ ...base(), drainTimeoutMs }));
  });

  it('a visibilityTimeoutMs that is not a whole number from 1 to 2147483647 is refused at creation, as every transport refuses it (the keep-alive ticks every third of it: 7e9 made it a timer of 1 ms)', () => {
    for (const visibilityTimeoutMs of [0, 1.5, 2 ** 31, 7_000_000_000]) {
      const [issue] = issuesOf(() => createConsumer({ ...base(), visibilityTimeoutMs }));
      assert.equal(issue?.path, 'createConsumer.visibilityTimeoutMs', `visibilityTimeoutMs ${visibilityTimeoutMs}`);
      assert.match(issue?.message ?? '', /must be an integer from 1 to 2147483647/);
      const subscribe = () => getInMemoryTransport().subscribe('t', 'g', { visibilityTimeoutMs });
      assert.equal(
        issuesOf(subscribe)[0]?.path,
        'subscribe options.visibilityTimeoutMs',
        `subscribe ${visibilityTimeoutMs}`,
      );
    }
    assert.doesNotThrow(() => createConsumer({ ...base(), visibilityTimeoutMs: 1 }));
    assert.doesNotThrow(() => createConsumer({ ...base(), visibilityTimeoutMs: 2 ** 31 - 1 }));
  });

  it('an inbox or dead-letter store lacking a method of its port is refused at creation, naming the methods', () => {
    const issues = issuesOf(() =>
      createConsumer({
        ...base(),
        inbox: {} as Inbox,
        deadLetters: { ...getInMemoryDeadLetterStore(), update: undefined } as unknown as DeadLetterStore,
      }),
    );
    assert.deepEqual(issues.map((i) => [i.path, i.message]).sort(), [
      ['createConsumer.deadLetters', 'must be a DeadLetterStore: it has no update (a method of the port)'],
      ['createConsumer.inbox', 'must be an Inbox: it has no has, add, prune (methods of the port)'],
    ]);
    assert.doesNotThrow(() =>
      createConsumer({ ...base(), inbox: getInMemoryInbox(), deadLetters: getInMemoryDeadLetterStore() }),
    );
  });

  it('a durable transport with no default dead-letter store needs deadLetters', () => {
    const memory = getInMemoryTransport();
    const durable: Transport = { ...memory, capabilities: { ...memory.capabilities, durable: true } };
    const [issue] = issuesOf(() => createConsumer(base(durable)));
    assert.equal(issue?.path, 'createConsumer.deadLetters');
    assert.match(issue?.message ?? '', /lost on restart/);
    assert.doesNotThrow(() => createConsumer({ ...base(durable), deadLetters: getInMemoryDeadLetterStore() }));
  });
});

describe('the retry shorthand', () => {
  it("maxRetries 3 with retryDelay [1000, 5000, 30000]: the seed's schedule, exact, then the dead-letter queue", () => {
    const policy = retryPolicyFromShorthand({ maxRetries: 3, retryDelay: [1000, 5000, 30_000] });
    const message = createMessage({ type: 'OrderPlaced', data: {} });
    const decisions = [1, 2, 3, 4].map((attempt) => policy(new Error('down'), attempt, message));
    assert.deepEqual(decisions, [
      { action: 'retry', delayMs: 1000 },
      { action: 'retry', delayMs: 5000 },
      { action: 'retry', delayMs: 30_000 },
      { action: 'dead-letter', reason: 'failed 4 times' },
    ]);
    assert.deepEqual(policy(new NonRetryableError('bad'), 1, message), {
      action: 'dead-letter',
      reason: 'not retryable',
    });
  });

  it('one delay for every retry; a short schedule repeats its last delay; defaults', () => {
    const message = createMessage({ type: 'OrderPlaced', data: {} });
    const delays = (policy: ReturnType<typeof retryPolicyFromShorthand>, attempts: number) =>
      Array.from({ length: attempts }, (_, i) => policy(new Error('x'), i + 1, message)).map((d) =>
        d.action === 'retry' ? d.delayMs : d.action,
      );
    assert.deepEqual(delays(retryPolicyFromShorthand({ retryDelay: 250 }), 4), [250, 250, 250, 'dead-letter']);
    assert.deepEqual(delays(retryPolicyFromShorthand({ maxRetries: 4, retryDelay: [10, 20] }), 5), [
      10,
      20,
      20,
      20,
      'dead-letter',
    ]);
    assert.deepEqual(delays(retryPolicyFromShorthand({ maxRetries: 1 }), 2), [1000, 'dead-letter']);
    assert.deepEqual(delays(retryPolicyFromShorthand({ maxRetries: 0 }), 1), ['dead-letter']);
  });

  it('a consumer with the shorthand waits the schedule, then dead-letters', async () => {
    const transport = getInMemoryTransport();
    const waits: number[] = [];
    let runs = 0;
    const consumer = createConsumer({
      ...base(transport),
      maxRetries: 3,
      retryDelay: [1000, 5000, 30_000],
      sleep: recordingSleep(waits),
      handler: () => {
        runs += 1;
        throw new Error('warehouse down');
      },
    });
    await consumer.start();
    try {
      await transport.publish('orders', [createMessage({ type: 'OrderPlaced', data: {} })]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
    } finally {
      await consumer.stop();
    }
    assert.deepEqual(waits, [1000, 5000, 30_000]);
    assert.equal(runs, 4);
    assert.equal((await consumer.deadLetters.list())[0]?.attempts, 4);
  });
});
