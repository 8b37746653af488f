import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeadLetter } from '../messaging/consumer-ports.ts';
import type { Message } from '../messaging/message.ts';
import { buildTraceTree } from './build-trace.ts';
import type { TracedEvent, TraceSources } from './trace-sources.ts';
import type { TraceNode } from './trace-tree.ts';

const t0 = Date.parse('2025-03-01T09:00:00.000Z');
const at = (ms: number) => new Date(t0 + ms);

const event = (id: string, position: number, ms: number, causationId?: string): TracedEvent => ({
  id,
  type: `Type${id}`,
  streamId: 'order-1',
  streamVersion: position,
  position,
  recordedAt: at(ms),
  metadata: { correlationId: 'op', ...(causationId ? { causationId } : {}) },
});

const message = (id: string, ms: number, causationId?: string): Message => ({
  id,
  type: `Type${id}`,
  data: {},
  key: id,
  headers: {},
  createdAt: at(ms),
  metadata: { correlationId: 'op', ...(causationId ? { causationId } : {}) },
});

const deadLetter = (m: Message, group: string, ms: number, redrives: number[] = []): DeadLetter => ({
  id: `dl-${m.id}-${group}`,
  consumer: group,
  topic: 'orders',
  message: m,
  error: { type: 'Error', message: 'boom' },
  reason: 'not retryable',
  attempts: 1,
  firstFailureAt: at(ms),
  lastFailureAt: at(ms),
  deadLetteredAt: at(ms),
  redrives: redrives.map(at),
  state: redrives.length > 0 ? 'redriven' : 'dead',
});

const none: TraceSources = { events: [], outbox: [], queued: [], deadLetters: [], handled: [] };

/** `kind:id[group]` per node, indented by depth: the shape of a tree in one readable list. */
const shape = (nodes: readonly TraceNode[], depth = 0): string[] =>
  nodes.flatMap((n) => [
    `${'  '.repeat(depth)}${n.kind}:${n.id}${n.group ? `[${n.group}]` : ''}:${n.status}`,
    ...shape(n.children, depth + 1),
  ]);

test('events, their handling, a dead letter with its redrive and what a handler caused form one tree', () => {
  const reply = message('m1', 40, 'e1');
  const tree = buildTraceTree(
    'op',
    {
      events: [event('e1', 1, 0), event('e2', 2, 5), event('e3', 3, 50, 'e1')],
      outbox: [{ topic: 'mail', message: reply, enqueuedAt: at(40) }],
      queued: [
        {
          topic: 'orders',
          group: 'billing',
          message: message('e2', 5),
          visibleAt: at(10_000),
          deliveryCount: 1,
          leased: true,
        },
      ],
      deadLetters: [deadLetter(message('e1', 0), 'notification', 30, [60])],
      handled: [
        { group: 'payment', messageId: 'e1', at: at(20) },
        { group: 'inventory', messageId: 'e1', at: at(20) },
        { group: 'notification', messageId: 'e1', at: at(70) },
      ],
    },
    { limit: 100, now: () => t0 + 100 },
  );
  assert.equal(tree.found, true);
  assert.equal(tree.truncated, false);
  assert.equal(tree.startedAt, at(0).toISOString());
  assert.deepEqual(shape(tree.roots), [
    'event:e1:stored',
    '  handled:e1[inventory]:handled',
    '  handled:e1[payment]:handled',
    '  dead-letter:e1[notification]:redriven',
    '    redrive:e1[notification]:redriven',
    '  handled:e1[notification]:handled',
    '  outbox:m1:waiting',
    '  event:e3:stored',
    '    gap:e3:not-handled',
    'event:e2:stored',
    '  queued:e2[billing]:in-delivery',
  ]);
  assert.equal(tree.nodeCount, 11);
  const dead = tree.roots[0]?.children[2];
  assert.equal(dead?.error?.message, 'boom');
  assert.equal(dead?.attempts, 1);
  assert.equal(dead?.deadLetterId, 'dl-e1-notification');
  assert.equal(tree.roots[0]?.stream, 'order-1');
  assert.equal(tree.roots[0]?.correlationId, 'op');
  assert.equal(tree.roots[0]?.children[5]?.causationId, 'e1');
  // Plain JSON: what goes out comes back the same.
  assert.deepEqual(JSON.parse(JSON.stringify(tree)), tree);
});

test('a node whose cause is not held sits under a missing-parent gap, with the inbox marks of that cause', () => {
  const tree = buildTraceTree(
    'op',
    { ...none, events: [event('e9', 9, 10, 'gone')], handled: [{ group: 'billing', messageId: 'gone', at: at(5) }] },
    { limit: 100 },
  );
  assert.deepEqual(shape(tree.roots), [
    'gap:gone:missing-parent',
    '  handled:gone[billing]:handled',
    '  event:e9:stored',
    '    gap:e9:not-handled',
  ]);
});

test('a queued copy waits while not leased or once its visibility passed', () => {
  const row = { topic: 't', group: 'g', message: message('m', 0), visibleAt: at(50), deliveryCount: 2, leased: true };
  const status = (now: number, leased: boolean) =>
    buildTraceTree('op', { ...none, queued: [{ ...row, leased }] }, { limit: 10, now: () => t0 + now }).roots[0]
      ?.children[0]?.status;
  assert.equal(status(10, true), 'in-delivery');
  assert.equal(status(60, true), 'waiting');
  assert.equal(status(10, false), 'waiting');
});

test('nothing found is an empty tree, not an error', () => {
  const tree = buildTraceTree('nobody', none, { limit: 10 });
  assert.deepEqual(tree, {
    correlationId: 'nobody',
    found: false,
    truncated: false,
    nodeCount: 0,
    limit: 10,
    startedAt: null,
    roots: [],
  });
});

test('past the limit, the earliest nodes are kept breadth first and the tree says it was cut', () => {
  const events = Array.from({ length: 6 }, (_, i) => event(`e${i}`, i + 1, i, i === 0 ? undefined : 'e0'));
  const handled = events.map((e, i) => ({ group: 'g', messageId: e.id, at: at(i + 100) }));
  const full = buildTraceTree('op', { ...none, events, handled }, { limit: 100 });
  assert.equal(full.nodeCount, 12);
  const cut = buildTraceTree('op', { ...none, events, handled }, { limit: 4 });
  assert.equal(cut.truncated, true);
  assert.equal(cut.nodeCount, 4);
  assert.deepEqual(shape(cut.roots), [
    'event:e0:stored',
    '  handled:e0[g]:handled',
    '  event:e1:stored',
    '  event:e2:stored',
  ]);
  // A source cut short by the reader marks the tree truncated even when it fits.
  assert.equal(buildTraceTree('op', { ...none, events }, { limit: 100, truncated: true }).truncated, true);
});

test('a causation cycle shows each member once', () => {
  const tree = buildTraceTree(
    'op',
    { ...none, events: [event('a', 1, 0, 'b'), event('b', 2, 1, 'a')] },
    { limit: 100 },
  );
  assert.deepEqual(shape(tree.roots), [
    'event:a:stored',
    '  gap:a:not-handled',
    '  event:b:stored',
    '    gap:b:not-handled',
  ]);
});

test('a causal chain tens of thousands of hops deep builds without exhausting the stack', () => {
  const hops = 20_000;
  const events = Array.from({ length: hops }, (_, i) => event(`e${i}`, i + 1, i, i === 0 ? undefined : `e${i - 1}`));
  const tree = buildTraceTree('op', { ...none, events }, { limit: 100_000 });
  assert.equal(tree.nodeCount, 2 * hops);
  assert.equal(tree.truncated, false);
  let node = tree.roots[0];
  let depth = 0;
  while (node !== undefined) {
    assert.equal(node.id, `e${depth}`);
    assert.deepEqual(
      node.children.map((c) => c.kind),
      depth === hops - 1 ? ['gap'] : ['gap', 'event'],
    );
    node = node.children[1];
    depth++;
  }
  assert.equal(depth, hops);
  const cut = buildTraceTree('op', { ...none, events }, { limit: 5 });
  assert.equal(cut.nodeCount, 5);
});
