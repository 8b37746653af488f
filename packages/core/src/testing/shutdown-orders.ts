import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConsumer } from '../messaging/consumer.ts';
import { getInMemoryInbox } from '../messaging/consumer-ports.ts';
import { defineEventRelay } from '../messaging/event-relay.ts';
import type { Transport } from '../messaging/transport.ts';
import type { Projection } from '../projections/types.ts';
import type { EventStore } from '../store/types.ts';
import { OUTAGE_SKIP_REASON, type OutageHook } from './outage.ts';
import { settlesWithin, waitUntil } from './wait-until.ts';

/** The parts of one service, opened on a backend of their own for one order. */
export interface ShutdownService {
  store: EventStore & { close(): Promise<void> };
  transport: Transport & { close(): Promise<void> };
  /** Writes one message to the outbox, committed. */
  enqueue(message: { type: string; data: unknown; key: string }): Promise<void>;
  /** Starts the outbox relay (publishing to `transport`). */
  startOutboxRelay(): Promise<{ stop(): Promise<void> }>;
  /** Starts a projection runner with these projections. */
  startProjections(projections: Projection<never>[]): Promise<{ stop(): Promise<void> }>;
  /** After every part stopped, e.g. ends the pool they shared; must resolve too. */
  close?(): Promise<void>;
}

export type ShutdownPart = 'store' | 'transport' | 'consumer' | 'outboxRelay' | 'eventRelay';
const parts: readonly ShutdownPart[] = ['store', 'transport', 'consumer', 'outboxRelay', 'eventRelay'];

export interface ShutdownOrdersOptions {
  /** Shown in the test names. */
  name: string;
  /** Opens a service's parts (its store, transport and outbox) for the `n`th order. */
  openService(n: number): Promise<ShutdownService>;
  /**
   * `'all'`: the 120 orders. A number: every rotation of the parts, both
   * ways, then seeded shuffles up to that many distinct orders.
   */
  orders: 'all' | number;
  /** How long each stop may take, ms. Default 5000. */
  stopWithinMs?: number;
  /** Consumer poll interval, ms. Default 20. */
  pollMs?: number;
  /**
   * Stops the backend the parts share (a server the test owns, never a shared
   * one), resolving with the call that starts it again. With it, the suite
   * also stops the busy parts in `outageOrders` orders after the backend went
   * away for good, each stop within `stopWithinMs`.
   */
  outage?: OutageHook;
  /** How many orders to try with the backend gone (every rotation, both ways, first). Default 4. */
  outageOrders?: number;
  skip?: string | false;
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}

/** `count` distinct orders: every rotation, forwards and backwards, then seeded shuffles. */
function someOrders(count: number): ShutdownPart[][] {
  const out = new Map<string, ShutdownPart[]>();
  const add = (order: ShutdownPart[]) => out.set(order.join(), order);
  for (let r = 0; r < parts.length && out.size < count; r++) {
    const rotated = [...parts.slice(r), ...parts.slice(0, r)];
    add(rotated);
    add([...rotated].reverse());
  }
  let seed = 13;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  while (out.size < Math.min(count, 120)) {
    const shuffled = [...parts];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j] as ShutdownPart, shuffled[i] as ShutdownPart];
    }
    add(shuffled);
  }
  return [...out.values()].slice(0, count);
}

/**
 * Contract: every part's `stop()` or `close()` resolves, in any order of
 * shutting a service down, while the parts are busy. Store, transport, a
 * consumer, the outbox relay and an event relay are started, a message goes
 * through the outbox and an event through the store, then the parts are
 * stopped in each order, each stop within a deadline.
 */
export function testShutdownOrders(options: ShutdownOrdersOptions): void {
  const orders = options.orders === 'all' ? permutations(parts) : someOrders(options.orders);
  const within = options.stopWithinMs ?? 5000;

  /** One service started and busy, then stopped in `order` (after the backend went away, given `outage`). */
  const stopInOrder = async (n: number, order: ShutdownPart[], outage?: OutageHook) => {
    const service = await options.openService(n);
    const { store, transport } = service;
    let handled = 0;
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      inbox: getInMemoryInbox(),
      pollMs: options.pollMs ?? 20,
      drainTimeoutMs: 500,
      onError: () => undefined,
      handler: () => {
        handled += 1;
      },
    });
    await consumer.start();
    const outboxRelay = await service.startOutboxRelay();
    const runner = await service.startProjections([
      defineEventRelay({
        name: 'orders-relay',
        transport,
        topic: 'orders',
        handles: ['OrderPlaced'],
      }) as Projection<never>,
    ]);
    // Busy parts: a message in the outbox and an event in the store, both on their way to the consumer.
    await service.enqueue({ type: 'Enqueued', data: { n }, key: `o-${n}` });
    await store.append(`order-${n}`, [{ type: 'OrderPlaced', data: { n } }]);
    await waitUntil(() => handled >= 1, `order ${n}: a message reached the consumer`);
    const resume = await outage?.();
    try {
      const stop: Record<ShutdownPart, () => Promise<unknown>> = {
        store: () => store.close(),
        transport: () => transport.close(),
        consumer: () => consumer.stop(),
        outboxRelay: () => outboxRelay.stop(),
        eventRelay: () => runner.stop(),
      };
      const gone = resume ? ' with the backend gone' : '';
      for (const part of order)
        await settlesWithin(stop[part](), within, `${part}.stop() in the order ${order.join(', ')}${gone}`);
      if (service.close)
        await settlesWithin(service.close(), within, `the close after the order ${order.join(', ')}${gone}`);
    } finally {
      await resume?.();
    }
  };

  describe(`Shutdown orders: ${options.name}`, { skip: options.skip || false }, () => {
    it(`every one of ${orders.length} orders of stopping store, transport, consumer, outbox relay and event relay resolves`, async () => {
      let n = 0;
      for (const order of orders) await stopInOrder(++n, order);
      assert.equal(n, orders.length);
    });

    const { outage } = options;
    const outageOrders = someOrders(options.outageOrders ?? 4);
    it(`with the backend gone for good, every one of ${outageOrders.length} orders of stopping the busy parts resolves`, {
      skip: outage ? false : OUTAGE_SKIP_REASON,
    }, async () => {
      let n = orders.length;
      for (const order of outageOrders) await stopInOrder(++n, order, outage);
    });
  });
}
