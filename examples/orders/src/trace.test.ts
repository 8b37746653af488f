import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { renderTraceTree, type TraceNode } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { getSqliteEventStore, getSqliteTracer, getSqliteTransport, startSqliteProjections } from '@factline/sqlite';
import { runOrdersDemo } from './demo.ts';
import { orderSchemas } from './schemas.ts';
import { orderEventsRelay, startOrderServices } from './services.ts';

/** `kind type[group]:status` per node, children indented. */
const outline = (nodes: readonly TraceNode[], depth = 0): string[] =>
  nodes.flatMap((n) => [
    `${'  '.repeat(depth)}${n.kind}${n.type ? ` ${n.type}` : ''}${n.group ? `[${n.group}]` : ''}:${n.status}`,
    ...outline(n.children, depth + 1),
  ]);
const sortedChildren = (node: TraceNode | undefined) => outline(node?.children ?? []).sort();

test('the trace of one order: its events, each group’s handling, and the dead-lettered branch of a failing handler', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-trace-'));
  const store = getSqliteEventStore({ path: join(dir, 'orders.db'), schemas: orderSchemas });
  const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 20 });
  // Notification refuses order 1003: its two events end in notification's dead letters.
  const services = await startOrderServices(
    transport,
    store.database,
    { pollMs: 50 },
    { service: 'notification', orderId: '1003' },
  );
  const projections = await startSqliteProjections(store, [orderEventsRelay(transport)]);
  const tracer = getSqliteTracer({ database: store.database });
  try {
    await runOrdersDemo(store, () => {});
    const settled = async (correlationId: string, handled: number, dead: number) => {
      const tree = await tracer.traceOperation(correlationId);
      const lines = outline(tree.roots).map((l) => l.trim());
      const count = (prefix: string) => lines.filter((l) => l.startsWith(prefix)).length;
      return count('handled') === handled && count('dead-letter') === dead && count('queued') === 0 && tree;
    };
    const failed = await waitUntil(() => settled('checkout-1003', 4, 2), 'order 1003 handled and dead-lettered');
    const shipped = await waitUntil(() => settled('checkout-1001', 6, 0), 'order 1001 handled by every group');

    // Order 1003: placed, then cancelled; inventory and payment applied both, notification dead-lettered both.
    assert.deepEqual(
      failed.roots.map((n) => `${n.type} ${n.stream}@${n.streamVersion}`),
      ['OrderPlaced order-1003@1', 'OrderCancelled order-1003@2'],
    );
    for (const event of failed.roots) {
      assert.deepEqual(sortedChildren(event), [
        `dead-letter ${event.type}[notification]:dead`,
        'handled[inventory]:handled',
        'handled[payment]:handled',
      ]);
      const dead = event.children.find((n) => n.kind === 'dead-letter');
      assert.equal(dead?.id, event.id, 'the dead letter is of this event (message id = event id)');
      assert.equal(dead?.error?.message, 'notification refuses order 1003 (injected fault)');
      assert.equal(dead?.attempts, 1);
      assert.equal(dead?.topic, 'order-events');
      assert.equal(event.correlationId, 'checkout-1003');
    }
    const [dead] = await services.consumers.notification.deadLetters.list();
    assert.equal(failed.roots[0]?.children.find((n) => n.kind === 'dead-letter')?.deadLetterId, dead?.id);

    // Order 1001: three events; OrderPaid is not relayed to the services, so its handling is a gap.
    assert.deepEqual(
      outline(shipped.roots).filter((l) => !l.startsWith(' ')),
      ['event OrderPlaced:stored', 'event OrderPaid:stored', 'event OrderShipped:stored'],
    );
    assert.deepEqual(sortedChildren(shipped.roots[1]), ['gap:not-handled']);
    for (const event of [shipped.roots[0], shipped.roots[2]]) {
      assert.deepEqual(sortedChildren(event), [
        'handled[inventory]:handled',
        'handled[notification]:handled',
        'handled[payment]:handled',
      ]);
    }
    const stored = await store.readStream('order-1001');
    assert.deepEqual(
      shipped.roots.map((n) => n.id),
      stored.events.map((e) => e.id),
    );

    assert.equal((await tracer.traceOperation('checkout-9999')).found, false);
    const cut = await tracer.traceOperation('checkout-1001', { limit: 2 });
    assert.equal(cut.truncated, true);
    assert.equal(cut.nodeCount, 2);

    const text = renderTraceTree(failed);
    assert.match(text, /^trace checkout-1003: 8 nodes from /);
    assert.match(text, /├─ event OrderPlaced order-1003@1 #\d+ id \S+ {2}\+0 ms/);
    assert.match(
      text,
      /dead-lettered by notification after 1 attempt \(not retryable\): NonRetryableError: notification refuses order 1003 \(injected fault\) {2}\+\d+ ms/,
    );
  } finally {
    await projections.stop();
    await services.stop();
    await transport.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
