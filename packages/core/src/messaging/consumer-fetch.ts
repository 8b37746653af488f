import { isStoreClosedError } from '../errors/index.ts';
import type { KeyLanes } from './consumer-lanes.ts';
import type { ConsumerErrorStage } from './consumer-options.ts';
import type { Delivery, Subscription } from './transport.ts';

export interface FetchSettings {
  /** Lanes run at once: the buffer holds 4 × as many deliveries. */
  concurrency: number;
  /** Longest wait for new messages per receive. */
  pollMs: number;
  lanes: KeyLanes;
  /** The inbox's pruning, run after each receive (it prunes at most once a minute). */
  pruneInbox: () => Promise<void>;
  /** The stop signal of this run of the consumer. */
  signal: AbortSignal;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  report: (error: unknown, stage: ConsumerErrorStage) => void;
  /** The transport was found closed: the consumer stops, visibly. */
  fail: () => void;
}

/** After a failed receive: 100 ms, doubling, at most 5 s. */
const RECEIVE_BACKOFF_MS = { first: 100, max: 5000 };

/**
 * The consumer's fetch loop, until `signal` aborts or the transport is found
 * closed: receives deliveries into the key lanes in batches (refilling only
 * once half the buffer was worked off: each receive is a write on the SQL
 * transports), backs off after a failed receive, and prunes the inbox when due.
 */
export async function fetchIntoLanes(sub: Subscription, settings: FetchSettings): Promise<void> {
  const { concurrency, pollMs, lanes, pruneInbox, signal, sleep, report, fail } = settings;
  let backoff = 0;
  while (!signal.aborted) {
    const room = concurrency * 4 - lanes.buffered();
    if (room < concurrency * 2) {
      await lanes.laneFreed(signal);
      continue;
    }
    let deliveries: Delivery[];
    try {
      deliveries = await sub.receive(room, pollMs, signal);
      backoff = 0;
    } catch (error) {
      report(error, 'receive');
      if (isStoreClosedError(error)) return fail();
      // Never spin on a failing transport: back off, then try again.
      backoff = Math.min(backoff === 0 ? RECEIVE_BACKOFF_MS.first : backoff * 2, RECEIVE_BACKOFF_MS.max);
      await sleep(backoff, signal);
      continue;
    }
    lanes.add(deliveries);
    await pruneInbox();
  }
}
