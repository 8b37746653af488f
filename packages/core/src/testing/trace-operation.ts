import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NonRetryableError } from '../errors/index.ts';
import type { DeadLetterStore, Inbox } from '../messaging/consumer-ports.ts';
import { createEventBus } from '../messaging/event-bus.ts';
import { defineEventRelay } from '../messaging/event-relay.ts';
import type { MessageInput } from '../messaging/message.ts';
import type { Transport } from '../messaging/transport.ts';
import type { Projection } from '../projections/types.ts';
import type { EventStore } from '../store/types.ts';
import { renderTraceTree } from '../tracing/render-trace.ts';
import type { OperationTracer, TraceNode, TraceTree } from '../tracing/trace-tree.ts';
import { waitUntil } from './wait-until.ts';

/** One fresh database (a file, a schema) with every part a trace reads. */
export interface TraceEnvironment<Tx> {
  store: EventStore;
  /** A durable transport in the same database. */
  transport: Transport;
  /** The SQL inbox: its marks are the "handled" nodes. */
  inbox: Inbox<Tx>;
  deadLetters: DeadLetterStore;
  tracer: OperationTracer;
  /** Starts a projection runner on the store running `relay`. */
  startRelay(relay: Projection<unknown>): Promise<{ stop(): Promise<void> }>;
  /** Inside a handler's transaction `tx`: writes `messages` to the outbox (no relay reads it in this suite). */
  enqueue(tx: Tx, topic: string, messages: MessageInput[]): unknown;
  close(): Promise<void>;
}

export interface TraceOperationOptions<Tx> {
  /** Shown in the test names. */
  name: string;
  open(): Promise<TraceEnvironment<Tx>>;
  skip?: string | false;
}

const topic = 'trace-orders';

/** `kind[group]:status` of each node, with its depth, in tree order; types of events and messages beside. */
const outline = (nodes: readonly TraceNode[], depth = 0): string[] =>
  nodes.flatMap((n) => [
    `${'  '.repeat(depth)}${n.kind}${n.type ? ` ${n.type}` : ''}${n.group ? `[${n.group}]` : ''}:${n.status}`,
    ...outline(n.children, depth + 1),
  ]);
/** Children as a sorted list: groups handle in any order. */
const sortedOutline = (node: TraceNode | undefined) => outline(node?.children ?? []).sort();

/**
 * The causal trace on a reference flow, run by each SQL adapter against its
 * own tables: two orders' events relayed to three consumer groups (their
 * inbox marks), one group's handler enqueueing a message in the outbox, one
 * dead-lettered and redriven branch, and a fourth group declared but never
 * consuming (its queued copies). Checks the tree of one order, the isolation
 * of the other, an unknown id, the limit and the rendering.
 *
 * @example
 * testTraceOperation({ name: 'sqlite', open: async () => ({ store, transport, inbox, deadLetters, tracer, ... }) });
 */
export function testTraceOperation<Tx>(options: TraceOperationOptions<Tx>): void {
  describe(`traceOperation: ${options.name}`, { skip: options.skip || false }, () => {
    it('gives one order its events, relayed handling per group, outbox entry, queued copies and a redriven dead letter', async () => {
      const env = await options.open();
      const stops: (() => Promise<void>)[] = [() => env.close()];
      try {
        let failing = true;
        const bus = createEventBus({ transport: env.transport, topic });
        const consumerOptions = { inbox: env.inbox, deadLetters: env.deadLetters, pollMs: 20 };
        // A group that never consumes: its copies stay queued in the transport.
        await env.transport.declareSubscription(topic, 'audit');
        bus.subscribe<Tx>('inventory', ['OrderPlaced'], () => undefined, consumerOptions);
        bus.subscribe<Tx>(
          'payment',
          ['OrderPlaced'],
          (message, tx) => env.enqueue(tx, 'payments', [{ type: 'ChargeCard', data: { order: message.key } }]),
          consumerOptions,
        );
        const notification = bus.subscribe<Tx>(
          'notification',
          ['OrderPlaced', 'OrderShipped'],
          (message) => {
            if (failing && message.key === 'order-2' && message.type === 'OrderPlaced') {
              throw new NonRetryableError('no address for order-2');
            }
          },
          consumerOptions,
        );
        await bus.start();
        stops.push(() => bus.stop());
        const relay = await env.startRelay(
          defineEventRelay({
            name: 'trace_relay',
            transport: env.transport,
            topic,
            handles: ['OrderPlaced', 'OrderShipped'],
          }),
        );
        stops.push(() => relay.stop());

        for (const order of ['order-1', 'order-2']) {
          const metadata = { correlationId: `checkout-${order}` };
          await env.store.append(order, [{ type: 'OrderPlaced', data: { order }, metadata }], { expectedVersion: 0 });
          // Not relayed: nobody's handling is recorded (a gap).
          await env.store.append(order, [{ type: 'OrderPaid', data: { order }, metadata }], { expectedVersion: 1 });
          await env.store.append(order, [{ type: 'OrderShipped', data: { order }, metadata }], { expectedVersion: 2 });
        }

        const [dead] = await waitUntil(async () => {
          const found = await notification.deadLetters.list();
          return found.length > 0 && found;
        }, 'the dead letter of order-2');
        assert.equal(dead?.message.key, 'order-2');
        failing = false;
        assert.equal(await notification.deadLetters.redrive(dead?.id as string), 1);

        // Settled: three groups marked both relayed events (the redrive's too), and acked them (an ack
        // may commit after its inbox mark: until then the copy shows as queued, in delivery).
        const settled = (tree: TraceTree) => {
          const lines = outline(tree.roots).map((line) => line.trim());
          return (
            lines.filter((line) => line.startsWith('handled')).length === 6 &&
            lines.filter((line) => line.startsWith('queued') && !line.includes('[audit]')).length === 0
          );
        };
        const tree = await waitUntil(async () => {
          const t = await env.tracer.traceOperation('checkout-order-2');
          return settled(t) && t;
        }, 'the six inbox marks of order-2 and their acks in its trace');

        assert.equal(tree.found, true);
        assert.equal(tree.truncated, false);
        assert.deepEqual(
          tree.roots.map((n) => `${n.kind} ${n.type} ${n.stream}@${n.streamVersion}`),
          ['event OrderPlaced order-2@1', 'event OrderPaid order-2@2', 'event OrderShipped order-2@3'],
        );
        const [placed, paid, shipped] = tree.roots;
        assert.deepEqual(sortedOutline(placed), [
          '  redrive[notification]:redriven',
          'dead-letter OrderPlaced[notification]:redriven',
          'handled[inventory]:handled',
          'handled[notification]:handled',
          'handled[payment]:handled',
          'outbox ChargeCard:waiting',
          'queued OrderPlaced[audit]:waiting',
        ]);
        assert.deepEqual(sortedOutline(paid), ['gap:not-handled']);
        assert.deepEqual(sortedOutline(shipped), [
          'handled[inventory]:handled',
          'handled[notification]:handled',
          'handled[payment]:handled',
          'queued OrderShipped[audit]:waiting',
        ]);
        // Causation links: the outbox entry was written while handling the event.
        const charge = placed?.children.find((n) => n.kind === 'outbox');
        assert.equal(charge?.causationId, placed?.id);
        assert.equal(charge?.correlationId, 'checkout-order-2');
        assert.equal(charge?.topic, 'payments');
        const deadNode = placed?.children.find((n) => n.kind === 'dead-letter');
        assert.equal(deadNode?.error?.message, 'no address for order-2');
        assert.equal(deadNode?.attempts, 1);
        assert.equal(deadNode?.reason, 'not retryable');
        assert.equal(deadNode?.deadLetterId, dead?.id);
        // The dead letter comes before its redrive's handling.
        const notified = placed?.children.find((n) => n.kind === 'handled' && n.group === 'notification');
        assert.ok(Date.parse(notified?.at as string) >= Date.parse(deadNode?.at as string));
        assert.equal(tree.nodeCount, 15);

        // The other order's trace holds its own nodes only.
        const other = await env.tracer.traceOperation('checkout-order-1');
        const ids = (nodes: readonly TraceNode[]): string[] => nodes.flatMap((n) => [n.id, ...ids(n.children)]);
        assert.equal(
          ids(other.roots).some((id) => ids(tree.roots).includes(id)),
          false,
        );
        assert.equal(
          outline(other.roots).some((l) => l.includes('dead-letter')),
          false,
        );

        // Unknown id, the limit, rendering.
        assert.equal((await env.tracer.traceOperation('checkout-nobody')).found, false);
        const cut = await env.tracer.traceOperation('checkout-order-2', { limit: 4 });
        assert.equal(cut.truncated, true);
        assert.equal(cut.nodeCount, 4);
        assert.deepEqual(
          cut.roots.map((n) => n.type),
          ['OrderPlaced', 'OrderPaid', 'OrderShipped'],
        );
        const text = renderTraceTree(tree);
        assert.match(text, /^trace checkout-order-2: 15 nodes from /);
        assert.match(text, /event OrderPlaced order-2@1 #\d+ id \S+ {2}\+0 ms/);
        assert.match(
          text,
          /dead-lettered by notification after 1 attempt \(not retryable\): NonRetryableError: no address for order-2 \[redriven\]/,
        );
        assert.match(text, /redriven to notification {2}\+\d+ ms/);
        assert.match(text, /outbox ChargeCard → payments: waiting for the relay/);
        assert.match(text, /queued for audit on trace-orders: waiting, delivered 0×/);
        assert.match(text, /\? not handled: no handling recorded/);
      } finally {
        for (const stop of stops.reverse()) await stop();
      }
    });

    it('an operation started by a plain append (no correlation id given) is traced from that event, dead letters included', async () => {
      const env = await options.open();
      const stops: (() => Promise<void>)[] = [() => env.close()];
      try {
        const plainTopic = `${topic}-plain`;
        const bus = createEventBus({ transport: env.transport, topic: plainTopic });
        bus.subscribe<Tx>(
          'billing',
          ['InvoiceDue'],
          () => {
            throw new NonRetryableError('no billing account');
          },
          { inbox: env.inbox, deadLetters: env.deadLetters, pollMs: 20 },
        );
        await bus.start();
        stops.push(() => bus.stop());
        const relay = await env.startRelay(
          defineEventRelay({
            name: 'trace_plain_relay',
            transport: env.transport,
            topic: plainTopic,
            handles: ['InvoiceDue'],
          }),
        );
        stops.push(() => relay.stop());
        const { events } = await env.store.append('invoice-9', [{ type: 'InvoiceDue', data: {} }]);
        const root = events[0]?.id as string;
        const tree = await waitUntil(async () => {
          const t = await env.tracer.traceOperation(root);
          return outline(t.roots).some((line) => line.trim().startsWith('dead-letter')) && t;
        }, 'the dead letter in the trace of the root event');
        assert.deepEqual(
          tree.roots.map((n) => `${n.kind} ${n.type} ${n.stream}@${n.streamVersion}`),
          ['event InvoiceDue invoice-9@1'],
          'the root event itself, not a missing parent',
        );
      } finally {
        for (const stop of stops.reverse()) await stop();
      }
    });
  });
}
