import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { handleCommand } from '../commands/handle-command.ts';
import { isValidationError, type ValidationError } from '../errors/index.ts';
import { createEventBus } from '../messaging/event-bus.ts';
import { defineEventRelay } from '../messaging/event-relay.ts';
import { getInMemoryTransport } from '../messaging/in-memory-transport.ts';
import { createProjectionRunner } from '../projections/runner.ts';
import type { ProjectionBackend } from '../projections/types.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';

/** Runs `work` and returns the paths of the ValidationError it threw or rejected with. */
async function issuePaths(work: () => unknown): Promise<string[]> {
  try {
    await work();
  } catch (error) {
    assert.ok(isValidationError(error), `expected a ValidationError, got ${String(error)}`);
    return (error as ValidationError).issues.map((issue) => issue.path);
  }
  assert.fail('expected a ValidationError, but it succeeded');
}

const transport = getInMemoryTransport();
const store = getInMemoryEventStore();
const decider = { initialState: () => 0, evolve: (s: number) => s + 1, decide: () => [] };
const projection = { name: 'p', handles: ['A'], handle: () => undefined };
const backend = { store } as unknown as ProjectionBackend<unknown>;

// factory call with a misspelt or ill-typed option → the path the error must name.
const cases: [string, () => unknown, string][] = [
  ['getInMemoryEventStore', () => getInMemoryEventStore({ limit: {} } as never), 'getInMemoryEventStore.limit'],
  [
    'getInMemoryEventStore limits',
    () => getInMemoryEventStore({ limits: { maxEventByte: 1 } } as never),
    'getInMemoryEventStore.limits.maxEventByte',
  ],
  ['getInMemoryTransport', () => getInMemoryTransport({ clock: Date.now } as never), 'getInMemoryTransport.clock'],
  [
    'subscribe',
    () => transport.subscribe('t', 'g', { visibilityTimeout: 5 } as never),
    'subscribe options.visibilityTimeout',
  ],
  [
    'subscribe kind',
    () => transport.subscribe('t', 'g', { visibilityTimeoutMs: '5' } as never),
    'subscribe options.visibilityTimeoutMs',
  ],
  ['createEventBus', () => createEventBus({ transport, topics: 'x' } as never), 'createEventBus.topics'],
  [
    'defineEventRelay',
    () => defineEventRelay({ name: 'r', transport, topic: 't', handles: ['A'], batch: 1 } as never),
    'defineEventRelay.batch',
  ],
  [
    'defineEventRelay handles',
    () => defineEventRelay({ name: 'r', transport, topic: 't', handles: 'A' } as never),
    'defineEventRelay.handles',
  ],
  [
    'handleCommand',
    () => handleCommand(store, 's-1', {}, decider, { expectVersion: 0 } as never),
    'handleCommand options.expectVersion',
  ],
  [
    'handleCommand kind',
    () => handleCommand(store, 's-1', {}, decider, { maxAttempts: '3' } as never),
    'handleCommand options.maxAttempts',
  ],
  [
    // A sleep above a timer's limit is one of 1 ms: the conflict retries would not wait at all.
    'handleCommand maxBackoffMs past a timer',
    () => handleCommand(store, 's-1', {}, decider, { maxBackoffMs: 2 ** 31 }),
    'handleCommand options.maxBackoffMs',
  ],
  [
    'handleCommand initialBackoffMs past a timer',
    () => handleCommand(store, 's-1', {}, decider, { initialBackoffMs: 2 ** 31 }),
    'handleCommand options.initialBackoffMs',
  ],
  [
    'createProjectionRunner',
    () => createProjectionRunner(backend, [projection], { batchsize: 5 } as never),
    'createProjectionRunner.batchsize',
  ],
  [
    'waitFor',
    () => createProjectionRunner(backend, [projection]).waitFor('p', 0, { timeout: 5 } as never),
    'waitFor options.timeout',
  ],
  // Over a timer's limit (2^31 - 1 ms) setTimeout fires after 1 ms: waitFor would time out at once.
  [
    'waitFor timeoutMs over a timer',
    () => createProjectionRunner(backend, [projection]).waitFor('p', 0, { timeoutMs: 2 ** 31 }),
    'waitFor options.timeoutMs',
  ],
  ...(['idleCheckMs', 'initialBackoffMs', 'maxBackoffMs'] as const).map((option): [string, () => unknown, string] => [
    `createProjectionRunner ${option} over a timer`,
    () => createProjectionRunner(backend, [projection], { [option]: 2 ** 31 }),
    `createProjectionRunner.${option}`,
  ]),
  // A handler gets at most maxBatchSize events at once: one below batchSize was raised to it.
  [
    'createProjectionRunner maxBatchSize below batchSize',
    () => createProjectionRunner(backend, [projection], { batchSize: 10, maxBatchSize: 2 }),
    'createProjectionRunner.maxBatchSize',
  ],
  [
    'createProjectionRunner maxBatchSize below the default batchSize',
    () => createProjectionRunner(backend, [projection], { maxBatchSize: 100 }),
    'createProjectionRunner.maxBatchSize',
  ],
  // The backoff ceiling starts at initialBackoffMs and doubles up to maxBackoffMs: one below it was never reached.
  [
    'createProjectionRunner maxBackoffMs below initialBackoffMs',
    () => createProjectionRunner(backend, [projection], { initialBackoffMs: 5000, maxBackoffMs: 10 }),
    'createProjectionRunner.maxBackoffMs',
  ],
  [
    'createProjectionRunner maxBackoffMs below the default initialBackoffMs',
    () => createProjectionRunner(backend, [projection], { maxBackoffMs: 50 }),
    'createProjectionRunner.maxBackoffMs',
  ],
  [
    'rebuild',
    () => createProjectionRunner(backend, [projection]).rebuild('p', { progress: () => 1 } as never),
    'rebuild options.progress',
  ],
];

describe('options of core factories and methods', () => {
  for (const [name, work, path] of cases) {
    it(`${name}: refuses it with a ValidationError at ${path}`, async () => {
      assert.deepEqual(await issuePaths(work), [path]);
    });
  }

  it('maxBackoffMs below initialBackoffMs: the error names both', () => {
    assert.throws(
      () => createProjectionRunner(backend, [projection], { initialBackoffMs: 5000, maxBackoffMs: 10 }),
      (error: unknown) =>
        isValidationError(error) && /initialBackoffMs \(5000\)/.test(error.message) && /got 10/.test(error.message),
    );
    // Either alone past the other's default is taken: the default ceiling is never below initialBackoffMs.
    createProjectionRunner(backend, [projection], { initialBackoffMs: 10_000 });
    createProjectionRunner(backend, [projection], { maxBackoffMs: 100 });
  });

  it('the same factories accept their documented options', async () => {
    getInMemoryEventStore({ limits: { maxEventBytes: 10 }, now: Date.now });
    getInMemoryTransport({ now: Date.now }).subscribe('t', 'g', { visibilityTimeoutMs: 5 });
    createEventBus({ transport, topic: 'events' });
    defineEventRelay({ name: 'r', transport, topic: 't', handles: ['A'] });
    const result = await handleCommand(store, 's-2', {}, decider, { maxAttempts: 2, expectedVersion: 'any' });
    assert.equal(result.attempts, 1);
  });
});
