import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidationError } from '../errors/index.ts';
import { buildTraceTree } from './build-trace.ts';
import { MAX_INDENTED_LEVELS, traceTreeToJson } from './trace-json.ts';
import type { TracedEvent } from './trace-sources.ts';
import type { TraceNode, TraceTree } from './trace-tree.ts';

const t0 = Date.parse('2025-03-01T09:00:00.000Z');

/** A chain of `hops` events, each caused by the one before (each with its not-handled gap). */
const chain = (hops: number): TraceTree => {
  const events: TracedEvent[] = Array.from({ length: hops }, (_, i) => ({
    id: `e${i}`,
    type: 'Step',
    streamId: 'job-1',
    streamVersion: i + 1,
    position: i + 1,
    recordedAt: new Date(t0 + i),
    metadata: { correlationId: 'op', ...(i > 0 ? { causationId: `e${i - 1}` } : {}) },
  }));
  return buildTraceTree('op', { events, outbox: [], queued: [], deadLetters: [], handled: [] }, { limit: 100_000 });
};

/** The nodes of a tree, depth first, each without its children: compared without recursion. */
const flat = (roots: readonly TraceNode[]) => {
  const nodes: Omit<TraceNode, 'children'>[] = [];
  const pending = [...roots].reverse();
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    const { children, ...rest } = node;
    nodes.push(rest);
    pending.push(...[...children].reverse());
  }
  return nodes;
};

test('traceTreeToJson writes a causal chain 20,000 hops deep, which reads back as the same tree', () => {
  const hops = 20_000;
  const tree = chain(hops);
  const compact = traceTreeToJson(tree);
  const read = JSON.parse(compact) as TraceTree;
  assert.deepEqual({ ...read, roots: [] }, { ...tree, roots: [] });
  assert.deepEqual(flat(read.roots), flat(tree.roots));
  assert.equal(flat(read.roots).length, 2 * hops);

  // Indented, the levels past MAX_INDENTED_LEVELS go on one line: the text grows with the nodes, not their depth squared.
  const indented = traceTreeToJson(tree, { indent: 2 });
  assert.deepEqual(flat((JSON.parse(indented) as TraceTree).roots), flat(tree.roots));
  assert.ok(indented.length < 2 * compact.length, `${indented.length} characters for ${compact.length} compact`);
  const widest = Math.max(...indented.split('\n').map((line) => line.length - line.trimStart().length));
  assert.equal(widest, 2 * MAX_INDENTED_LEVELS);
});

test('traceTreeToJson writes what JSON.stringify writes, indented or not, escapes included', () => {
  const at = (ms: number) => new Date(t0 + ms).toISOString();
  const tree: TraceTree = {
    correlationId: 'op "1"\n\u2028',
    found: true,
    truncated: false,
    nodeCount: 4,
    limit: 1000,
    startedAt: at(0),
    roots: [
      {
        kind: 'event',
        id: 'e1',
        type: 'Placed',
        at: at(0),
        status: 'stored',
        stream: 'order-\\1',
        streamVersion: 1,
        position: 1,
        topic: undefined as unknown as string,
        children: [
          {
            kind: 'dead-letter',
            id: 'e1',
            at: at(5),
            status: 'dead',
            group: 'billing',
            error: { type: 'Error', message: 'card "x" \t declined \ud800' },
            attempts: 3,
            children: [],
          },
          { kind: 'gap', id: 'e1', at: null, status: 'not-handled', note: 'ünïcode 🚚', children: [] },
        ],
      },
      { kind: 'gap', id: 'm0', at: null, status: 'missing-parent', children: [] },
    ],
  };
  assert.equal(traceTreeToJson(tree), JSON.stringify(tree));
  assert.equal(traceTreeToJson(tree, { indent: 0 }), JSON.stringify(tree));
  assert.equal(traceTreeToJson(tree, { indent: 2 }), JSON.stringify(tree, null, 2));
  assert.equal(traceTreeToJson(tree, { indent: 10 }), JSON.stringify(tree, null, 10));
  const empty: TraceTree = { ...tree, found: false, nodeCount: 0, startedAt: null, roots: [] };
  assert.equal(traceTreeToJson(empty, { indent: 2 }), JSON.stringify(empty, null, 2));
  // Down to MAX_INDENTED_LEVELS levels of nesting (a chain of 48 hops), the same text as JSON.stringify.
  const deep = chain(48);
  assert.equal(traceTreeToJson(deep, { indent: 2 }), JSON.stringify(deep, null, 2));
  const deeper = chain(60);
  assert.notEqual(traceTreeToJson(deeper, { indent: 2 }), JSON.stringify(deeper, null, 2));
  assert.deepEqual(JSON.parse(traceTreeToJson(deeper, { indent: 2 })), deeper);
});

test('traceTreeToJson refuses an indent out of 0 to 10, or an unknown option, naming it', () => {
  const tree = chain(1);
  for (const [options, message] of [
    [{ indent: 11 }, /traceTreeToJson\.indent: must be an integer from 0 to 10, got number 11/],
    [{ indent: 1.5 }, /traceTreeToJson\.indent: must be an integer from 0 to 10, got number 1.5/],
    [{ indent: '  ' }, /traceTreeToJson\.indent: must be an integer from 0 to 10, got ' {2}'/],
    [{ indnt: 2 }, /traceTreeToJson\.indnt: is not an option \(did you mean 'indent'\?\)/],
  ] as const) {
    assert.throws(
      () => traceTreeToJson(tree, options as never),
      (error: unknown) => isValidationError(error) && message.test((error as Error).message),
    );
  }
});
