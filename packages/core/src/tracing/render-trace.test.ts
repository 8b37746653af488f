import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderTraceTree } from './render-trace.ts';
import type { TraceNode, TraceTree } from './trace-tree.ts';

const t = (ms: number) => new Date(Date.parse('2025-03-01T09:00:00.000Z') + ms).toISOString();

test('renderTraceTree draws the tree with times relative to the first node', () => {
  const tree: TraceTree = {
    correlationId: 'checkout-1',
    found: true,
    truncated: true,
    nodeCount: 8,
    limit: 8,
    startedAt: t(0),
    roots: [
      {
        kind: 'event',
        id: 'e1',
        type: 'OrderPlaced',
        at: t(0),
        status: 'stored',
        stream: 'order-1',
        streamVersion: 1,
        position: 7,
        children: [
          { kind: 'handled', id: 'e1', at: t(12), status: 'handled', group: 'inventory', children: [] },
          {
            kind: 'dead-letter',
            id: 'e1',
            type: 'OrderPlaced',
            at: t(15),
            status: 'redriven',
            group: 'notification',
            topic: 'orders',
            error: { type: 'Error', message: 'no address' },
            attempts: 1,
            reason: 'not retryable',
            children: [
              { kind: 'redrive', id: 'e1', at: t(400), status: 'redriven', group: 'notification', children: [] },
            ],
          },
          {
            kind: 'queued',
            id: 'e1',
            at: null,
            status: 'waiting',
            group: 'payment',
            topic: 'orders',
            deliveryCount: 2,
            visibleAt: t(1000),
            children: [],
          },
          {
            kind: 'outbox',
            id: 'm1',
            type: 'SendMail',
            at: t(20),
            status: 'waiting',
            topic: 'mail',
            children: [{ kind: 'gap', id: 'm1', at: null, status: 'not-handled', note: 'nobody', children: [] }],
          },
        ],
      },
      {
        kind: 'gap',
        id: 'm0',
        at: null,
        status: 'missing-parent',
        note: 'not held',
        children: [
          { kind: 'message', id: 'm2', type: 'Ping', at: t(30), status: 'published', topic: 'x', children: [] },
        ],
      },
    ],
  };
  assert.equal(
    renderTraceTree(tree),
    [
      'trace checkout-1: 8 nodes from 2025-03-01T09:00:00.000Z',
      '├─ event OrderPlaced order-1@1 #7 id e1  +0 ms',
      '│  ├─ handled by inventory  +12 ms',
      '│  ├─ dead-lettered by notification after 1 attempt (not retryable): Error: no address [redriven]  +15 ms',
      '│  │  └─ redriven to notification  +400 ms',
      '│  ├─ queued for payment on orders: waiting, delivered 2×, visible at +1000 ms',
      '│  └─ outbox SendMail → mail: waiting for the relay, id m1  +20 ms',
      '│     └─ ? not handled: nobody',
      '└─ ? missing parent m0: not held',
      '   └─ message Ping on x id m2  +30 ms',
      '… truncated: more than 8 nodes (raise `limit` to see more)',
    ].join('\n'),
  );
});

test('an empty tree renders as one line saying nothing was found', () => {
  const tree: TraceTree = {
    correlationId: 'nobody',
    found: false,
    truncated: false,
    nodeCount: 0,
    limit: 1000,
    startedAt: null,
    roots: [],
  };
  assert.equal(renderTraceTree(tree), 'trace nobody: nothing carries this correlation id');
});

test('a chain 20,000 levels deep renders in text that grows with its nodes, indented 40 levels at most', () => {
  const depth = 20_000;
  const root: TraceNode = {
    kind: 'event',
    id: 'e0',
    type: 'Step',
    at: t(0),
    status: 'stored',
    stream: 'job-1',
    streamVersion: 1,
    position: 1,
    children: [],
  };
  let node = root;
  for (let i = 1; i < depth; i++) {
    const child: TraceNode = {
      kind: 'message',
      id: `m${i}`,
      type: 'Step',
      at: t(i),
      status: 'published',
      children: [],
    };
    node.children.push(child);
    node = child;
  }
  const tree: TraceTree = {
    correlationId: 'long',
    found: true,
    truncated: false,
    nodeCount: depth,
    limit: 100_000,
    startedAt: t(0),
    roots: [root, { kind: 'gap', id: 'x', at: null, status: 'missing-parent', note: 'not held', children: [] }],
  };
  const text = renderTraceTree(tree);
  // Indented by depth, this chain's text would take 3 × depth² / 2 = 600,000,000 characters (more than a string holds).
  assert.ok(text.length < 200 * depth, `${text.length} characters for ${depth} nodes`);
  const lines = text.split('\n');
  assert.equal(lines.length, depth + 2);
  assert.equal(lines[1], '├─ event Step job-1@1 #1 id e0  +0 ms');
  assert.equal(lines[2], '│  └─ message Step id m1  +1 ms');
  // Depth 40 is indented 39 levels; every line deeper, 40 levels and its depth.
  const indent39 = `│  ${'   '.repeat(38)}`;
  assert.equal(lines[40], `${indent39}└─ message Step id m39  +39 ms`);
  assert.equal(lines[41], `${indent39}   └─ [depth 41] message Step id m40  +40 ms`);
  assert.equal(lines[42], `${indent39}   └─ [depth 42] message Step id m41  +41 ms`);
  assert.equal(lines[depth], `${indent39}   └─ [depth ${depth}] message Step id m${depth - 1}  +${depth - 1} ms`);
  assert.equal(lines[depth + 1], '└─ ? missing parent x: not held');
});
