import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidationError } from '../errors/index.ts';
import { createOperationTracer } from './operation-tracer.ts';
import type { TracedEvent, TraceReader } from './trace-sources.ts';

const event = (id: string, position: number, causationId?: string): TracedEvent => ({
  id,
  type: 'OrderPlaced',
  streamId: 'order-1',
  streamVersion: position,
  position,
  recordedAt: new Date(1000 + position),
  metadata: { correlationId: 'op', ...(causationId ? { causationId } : {}) },
});

/** A reader over a few events; records what it was asked. */
function fakeReader(events: TracedEvent[]) {
  const calls: { source: string; limit: number; ids?: readonly string[] }[] = [];
  const reader: TraceReader = {
    events: async (id, limit) => {
      calls.push({ source: 'events', limit });
      return id === 'op' ? events.slice(0, limit) : [];
    },
    outbox: async (_, limit) => {
      calls.push({ source: 'outbox', limit });
      return [];
    },
    queued: async (_, limit) => {
      calls.push({ source: 'queued', limit });
      return [];
    },
    deadLetters: async (_, limit) => {
      calls.push({ source: 'deadLetters', limit });
      return [];
    },
    handled: async (ids, limit) => {
      calls.push({ source: 'handled', limit, ids });
      return ids.includes('e1') ? [{ group: 'billing', messageId: 'e1', at: new Date(2000) }] : [];
    },
  };
  return { reader, calls };
}

test('traceOperation reads each source one row past the limit, then the inbox marks of every id and cause', async () => {
  const { reader, calls } = fakeReader([event('e1', 1), event('e2', 2, 'gone')]);
  const tree = await createOperationTracer(reader).traceOperation('op', { limit: 10 });
  assert.deepEqual(
    calls.map((c) => [c.source, c.limit]),
    [
      ['events', 11],
      ['outbox', 11],
      ['queued', 11],
      ['deadLetters', 11],
      ['handled', 11],
    ],
  );
  assert.deepEqual(calls.at(-1)?.ids, ['e1', 'e2', 'gone']);
  assert.equal(tree.found, true);
  assert.equal(tree.roots[0]?.children[0]?.group, 'billing');
  assert.equal(tree.limit, 10);
});

test('a source holding more rows than the limit makes a truncated tree of limit nodes', async () => {
  const events = Array.from({ length: 5 }, (_, i) => event(`e${i}`, i + 1));
  const tree = await createOperationTracer(fakeReader(events).reader).traceOperation('op', { limit: 3 });
  assert.equal(tree.truncated, true);
  assert.equal(tree.nodeCount, 3);
  assert.deepEqual(
    tree.roots.map((n) => n.id),
    ['e0', 'e1', 'e2'],
  );
});

test('an unknown correlation id is an empty tree, and asks the inbox nothing', async () => {
  const { reader, calls } = fakeReader([event('e1', 1)]);
  const tree = await createOperationTracer(reader).traceOperation('unknown');
  assert.equal(tree.found, false);
  assert.deepEqual(tree.roots, []);
  assert.equal(tree.limit, 1000);
  assert.equal(
    calls.some((c) => c.source === 'handled'),
    false,
  );
});

test('bad input is a ValidationError naming what is wrong, before anything is read', async () => {
  const { reader, calls } = fakeReader([]);
  const tracer = createOperationTracer(reader);
  const cases: [unknown, unknown, RegExp][] = [
    ['', undefined, /correlationId: must be a non-empty string, got ''/],
    [42, undefined, /correlationId: must be a non-empty string, got number 42/],
    [undefined, undefined, /correlationId: must be a non-empty string, got undefined/],
    ['op', { limit: 0 }, /traceOperation\.limit: must be an integer from 1 to 100000, got number 0/],
    ['op', { limit: 100_001 }, /limit: must be an integer from 1 to 100000/],
    ['op', { limit: 2.5 }, /limit: must be an integer/],
    ['op', { limt: 5 }, /traceOperation\.limt: is not an option \(did you mean 'limit'\?\)/],
  ];
  for (const [id, options, message] of cases) {
    await assert.rejects(
      tracer.traceOperation(id as string, options as never),
      (error: unknown) => isValidationError(error) && message.test((error as Error).message),
      `${String(id)} ${JSON.stringify(options)}`,
    );
  }
  assert.deepEqual(calls, []);
});
