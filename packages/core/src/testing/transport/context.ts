import assert from 'node:assert/strict';
import type { Message, MessageInput } from '../../messaging/message.ts';
import type {
  Delivery,
  SubscribeOptions,
  Subscription,
  Transport,
  TransportCapabilities,
} from '../../messaging/transport.ts';
import { OUTAGE_SKIP_REASON } from '../outage.ts';

/** What one transport case gets: a fresh transport and names no other case uses. */
export interface TransportCaseContext {
  transport: Transport;
  /** A topic name unique to this run. */
  topic(label?: string): string;
  /** A group name unique to this run. */
  group(label?: string): string;
  /** A new message (type `'ConformanceTested'`, data `{}` unless given). */
  message(input?: Partial<MessageInput>): Message;
  /**
   * Receives from `subscription` until `count` deliveries arrived (more may
   * come), failing after `deadlineMs`. Deliveries are not settled.
   */
  receiveAtLeast(subscription: Subscription, count: number, options?: ReceiveOptions): Promise<Delivery[]>;
  /** The suite's `restart` option: restarts the backend (cases that call it require `'restart'`). */
  restart(): Promise<void>;
  /**
   * The suite's `outage` option: stops the backend and resolves with the call
   * that starts it again (cases that call it require `'outage'`). The suite
   * starts it again after the case if the case did not.
   */
  outage(): Promise<() => Promise<void>>;
}

export interface ReceiveOptions {
  /** Longest time to keep receiving. Default 5000 ms. */
  deadlineMs?: number;
  /** `max` per receive call. Default 100. */
  max?: number;
}

/** What a case needs: a capability the transport declares, or a `restart` or `outage` hook in the suite's options. */
export type TransportRequirement = keyof TransportCapabilities | 'restart' | 'outage';

/** The skip reason shown for each requirement a transport (or the suite's options) does not meet. */
export const transportSkipReasons: Readonly<Record<TransportRequirement, string>> = {
  delayedDelivery: 'no delayed delivery (capabilities.delayedDelivery is false)',
  deadLettering: 'no dead-letter queue of its own (capabilities.deadLettering is false)',
  perKeyOrder: 'no per-key order (capabilities.perKeyOrder is false)',
  competingConsumers: 'no competing consumers (capabilities.competingConsumers is false)',
  durable: 'not durable (capabilities.durable is false)',
  delayedReleaseHoldsKey:
    'a delayed release holds its key in the releasing process only (capabilities.delayedReleaseHoldsKey is not set)',
  restart: 'no restart hook: give the suite a restart option that restarts the backend',
  outage: OUTAGE_SKIP_REASON,
};

export interface TransportConformanceCase {
  name: string;
  /** Skipped, with the reason from `transportSkipReasons`, where one of these is missing. */
  requires?: readonly TransportRequirement[];
  run(context: TransportCaseContext): Promise<void>;
}

// ---------------------------------------------------------------------------
// Helpers shared by the cases.

/** A signal that never aborts. */
export const never = (): AbortSignal => new AbortController().signal;

export const ids = (deliveries: readonly Delivery[]) => deliveries.map((d) => d.message.id);

export const ackAll = (deliveries: readonly Delivery[]) => Promise.all(deliveries.map((d) => d.ack()));

export const subscribe = (context: TransportCaseContext, topic: string, group: string, options?: SubscribeOptions) =>
  context.transport.subscribe(topic, group, options);

/** Receives until `count` deliveries came, failing after `deadlineMs` (the `receiveAtLeast` of the context). */
export async function receiveAtLeast(
  subscription: Subscription,
  count: number,
  options: ReceiveOptions = {},
): Promise<Delivery[]> {
  const deadline = Date.now() + (options.deadlineMs ?? 5000);
  const out: Delivery[] = [];
  while (out.length < count) {
    const left = deadline - Date.now();
    if (left <= 0) assert.fail(`received ${out.length} deliveries, expected at least ${count} in time`);
    const max = options.max ?? 100;
    const got = await subscription.receive(max, Math.min(left, 200), never());
    if (got.length > max) assert.fail(`receive(${max}) returned ${got.length} deliveries`);
    out.push(...got);
  }
  return out;
}

/** Everything `subscription` hands out within `waitMs` (proves something is held back, so it must wait). */
export async function receiveFor(subscription: Subscription, waitMs: number, max = 100): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const deadline = Date.now() + waitMs;
  for (let left = waitMs; left > 0; left = deadline - Date.now()) {
    out.push(...(await subscription.receive(max, left, never())));
  }
  return out;
}

/** Receives for `waitMs` and asserts nothing came: proves something does NOT happen, so it must wait. */
export async function assertNothingFor(subscription: Subscription, waitMs: number, why: string): Promise<void> {
  assert.deepEqual(ids(await receiveFor(subscription, waitMs, 10)), [], why);
}
