import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConsumer } from '../messaging/consumer.ts';
import { getInMemoryInbox } from '../messaging/consumer-ports.ts';
import { defineEventRelay } from '../messaging/event-relay.ts';
import type { Message } from '../messaging/message.ts';
import type { OutboxRelayStats } from '../messaging/relay-status.ts';
import type { Transport } from '../messaging/transport.ts';
import type { ProjectionRunner, ProjectionRunnerOptions } from '../projections/runner.ts';
import type { Projection } from '../projections/types.ts';
import type { EventStore } from '../store/types.ts';
import { waitUntil } from './wait-until.ts';

/** One backend (a file, a schema) whose parts each open a connection of their own, as processes would. */
export interface StartUpBackend {
  /** A transport on its own connection (the first one opened creates the tables). */
  openTransport(): Promise<Transport & { close(): Promise<void> }>;
  /** Writes one message for topic `orders` to the outbox, committed; returns it. */
  enqueue(): Promise<Message>;
  /** Rows waiting in the outbox. */
  pendingInOutbox(): Promise<number>;
  /** Starts the outbox relay publishing to `transport`. */
  startOutboxRelay(transport: Transport): Promise<{ stop(): Promise<void>; stats(): OutboxRelayStats }>;
  /** The event store (opened by the backend). */
  store: EventStore;
  /** Starts a projection runner on the store. */
  startProjections(projections: Projection<never>[], options: ProjectionRunnerOptions): Promise<ProjectionRunner>;
  /** Messages still queued for any group (0 once every delivery was acknowledged). */
  queued(): Promise<number>;
  /** Closes what the backend opened. */
  close(): Promise<void>;
}

export interface StartUpOrdersOptions {
  /** Shown in the test names. */
  name: string;
  /** A fresh backend for one case. */
  openBackend(): Promise<StartUpBackend>;
  skip?: string | false;
}

type Part = 'relay' | 'transport' | 'consumer';
const orders: readonly (readonly Part[])[] = [
  ['relay', 'transport', 'consumer'],
  ['relay', 'consumer', 'transport'],
  ['transport', 'relay', 'consumer'],
  ['transport', 'consumer', 'relay'],
  ['consumer', 'relay', 'transport'],
  ['consumer', 'transport', 'relay'],
];

interface Started {
  received: Message[];
  duplicates(): number;
  stop(): Promise<void>;
}

/** Starts the parts in `order`; `relay` starts a relay on a transport of its own and returns its stop. */
async function startInOrder(
  backend: StartUpBackend,
  order: readonly Part[],
  relay: () => Promise<() => Promise<void>>,
): Promise<Started> {
  const received: Message[] = [];
  const stops: (() => Promise<void>)[] = [];
  let duplicates = () => 0;
  const start: Record<Part, () => Promise<void>> = {
    relay: async () => {
      stops.push(await relay());
    },
    transport: async () => {
      const transport = await backend.openTransport();
      stops.push(() => transport.close());
    },
    consumer: async () => {
      const transport = await backend.openTransport();
      const consumer = createConsumer({
        name: 'billing',
        topic: 'orders',
        transport,
        inbox: getInMemoryInbox(),
        pollMs: 50,
        handler: (message) => void received.push(message),
      });
      stops.push(async () => {
        await consumer.stop();
        await transport.close();
      });
      await consumer.start();
      duplicates = () => consumer.stats().duplicates;
    },
  };
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop();
  };
  try {
    for (const part of order) await start[part]();
  } catch (error) {
    await stopAll();
    throw error;
  }
  return { received, duplicates: () => duplicates(), stop: stopAll };
}

/** The group's queue is empty, and the handler ran once for the message. */
async function assertDeliveredOnce(backend: StartUpBackend, started: Started, id: string) {
  await waitUntil(() => started.received.length >= 1, 'the message handled', 5000);
  await waitUntil(async () => (await backend.queued()) === 0, 'the group settled everything', 5000);
  assert.deepEqual(
    started.received.map((m) => m.id),
    [id],
  );
  assert.equal(started.duplicates(), 0, 'published once');
}

/**
 * Contract: nothing is lost by start-up order. A service starts three parts,
 * in every order, each on a connection of its own as separate processes
 * would: a relay (outbox or event relay), a transport (the service's own
 * publisher, which creates the tables) and the consumer. A message written
 * before any of them started reaches the consumer once. Each relay counts as
 * started once it tried its first publish, so the orders are the orders in
 * which the parts act.
 */
export function testStartUpOrders(options: StartUpOrdersOptions): void {
  describe(`Start-up orders: ${options.name}`, { skip: options.skip || false }, () => {
    for (const order of orders) {
      it(`outbox relay: ${order.join(', ')}`, async () => {
        const backend = await options.openBackend();
        try {
          const message = await backend.enqueue();
          const started = await startInOrder(backend, order, async () => {
            const transport = await backend.openTransport();
            const relay = await backend.startOutboxRelay(transport);
            await waitUntil(() => relay.stats().published > 0 || relay.stats().lastError !== undefined, 'a first try');
            return async () => {
              await relay.stop();
              await transport.close();
            };
          });
          try {
            await waitUntil(async () => (await backend.pendingInOutbox()) === 0, 'the outbox drained', 5000);
            await assertDeliveredOnce(backend, started, message.id);
          } finally {
            await started.stop();
          }
        } finally {
          await backend.close();
        }
      });

      it(`event relay: ${order.join(', ')}`, async () => {
        const backend = await options.openBackend();
        try {
          const { events } = await backend.store.append('order-1', [{ type: 'OrderPlaced', data: { id: 'o-1' } }]);
          const position = events[0]?.position as number;
          let waitFor = async () => undefined as unknown;
          const started = await startInOrder(backend, order, async () => {
            const transport = await backend.openTransport();
            const relay = defineEventRelay({
              name: 'orders-relay',
              transport,
              topic: 'orders',
              handles: ['OrderPlaced'],
            });
            let tried = false;
            const runner = await backend.startProjections([relay as Projection<never>], {
              initialBackoffMs: 5,
              maxBackoffMs: 40,
              idleCheckMs: 50,
              onError: () => {
                tried = true;
              },
            });
            await waitUntil(() => tried || runner.status('orders-relay').checkpoint >= position, 'a first try');
            waitFor = () => runner.waitFor('orders-relay', position, { timeoutMs: 5000 });
            return async () => {
              await runner.stop();
              await transport.close();
            };
          });
          try {
            await waitFor();
            await assertDeliveredOnce(backend, started, events[0]?.id as string);
          } finally {
            await started.stop();
          }
        } finally {
          await backend.close();
        }
      });
    }
  });
}
