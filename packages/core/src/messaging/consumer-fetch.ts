import { isStoreClosedError } from '../errors/index.ts';
import type { KeyLanes } from './consumer-lanes.ts';
import type { ConsumerErrorStage } from './consumer-options.ts';
import type { Message } from './message.ts';
import type { Delivery, Subscription } from './transport.ts';

export interface FetchSettings {
  /**
   * Lanes run at once: the buffer holds 4 × as many deliveries, besides the
   * runs only waiting for a shared group commit (up to 32 × in all).
   */
  concurrency: number;
  /** Longest wait for new messages per receive. */
  pollMs: number;
  lanes: KeyLanes;
  /** The inbox's pruning, run after each receive (it prunes at most once a minute). */
  pruneInbox: () => Promise<void>;
  /** The stop signal of this run of the consumer. */
  signal: AbortSignal;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  report: (error: unknown, stage: ConsumerErrorStage, message?: Message) => void;
  /** The transport was found closed: the consumer stops, visibly. */
  fail: () => void;
}

/** After a failed receive: 100 ms, doubling, at most 5 s. */
const RECEIVE_BACKOFF_MS = { first: 100, max: 5000 };

/** Resolves after the event loop's next turn: timers and I/O run first. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Gives `deliveries` back to the transport, due at once; failures reported. */
const release = (deliveries: readonly Delivery[], report: FetchSettings['report']) =>
  Promise.all(deliveries.map((d) => d.release(0).catch((error: unknown) => report(error, 'release', d.message))));

/**
 * The consumer's fetch loop, until `signal` aborts or the transport is found
 * closed: receives deliveries into the key lanes in batches (refilling only
 * once half the buffer was worked off: each receive is a write on the SQL
 * transports), backs off after a failed receive, and prunes the inbox when due.
 * After an empty receive it lets the event loop turn before the next one. What
 * a receive returns once `signal` aborted is given back (released, due at once).
 * Runs that only wait for a shared group commit do not count against the
 * buffer, so an inbox with group commits gets more messages per commit than
 * there are lanes; the buffer never holds more than 32 × `concurrency`.
 */
export async function fetchIntoLanes(sub: Subscription, settings: FetchSettings): Promise<void> {
  const { concurrency, pollMs, lanes, pruneInbox, signal, sleep, report, fail } = settings;
  let backoff = 0;
  while (!signal.aborted) {
    // A run only waiting for a group commit shared with other runs takes no room: while it waits, the
    // deliveries fetched meanwhile join its commit (one commit for more messages), up to a bound.
    const buffered = lanes.buffered();
    const room = Math.min(concurrency * 4 - (buffered - lanes.settling()), concurrency * 32 - buffered);
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
    if (signal.aborted) {
      // Answered after the stop: the stop may have given the lanes back already (it waits for this loop
      // only so long), and nothing would release or extend these. They go back from here.
      await release(deliveries, report);
      return;
    }
    lanes.add(deliveries);
    await pruneInbox();
    // A receive that answers an empty hand at once (whatever its wait) never keeps timers and I/O from running.
    if (deliveries.length === 0) await nextTurn();
  }
}
