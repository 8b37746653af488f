import { type Logger, log } from '../logging/logger.ts';

/** What an outbox relay reports about itself (`relay.stats()`), on every adapter. */
export interface OutboxRelayStats {
  /** `'held'`: this relay publishes; `'standby'`: another one holds the lease (or this one lost it). */
  lease: 'held' | 'standby';
  /** Messages whose publish resolved. */
  published: number;
  /** Rounds that failed (publish, read or delete), retried after the poll interval. */
  failures: number;
  /**
   * Topics whose rows are held because no subscription to them is declared
   * (`NoSubscriptionError`): kept in the outbox and tried again with backoff.
   */
  held: readonly string[];
  /**
   * Topics whose rows are held because the transport refused their last
   * publish as not retryable (`retryable: false`, e.g. a message larger than
   * it carries): kept in the outbox, tried again with backoff, each refusal
   * counted in `failures`. The rows go out once the cause is fixed, or
   * once the refused row is deleted from the outbox by hand.
   */
  refused: readonly string[];
  /** The last failure or refusal, or the `NoSubscriptionError` of the last hold. */
  lastError: unknown;
  running: boolean;
}

export interface RelayStatusCallbacks {
  onError?: (error: unknown) => void;
  onLeaseChange?: (lease: 'held' | 'standby') => void;
  /** Told what the callbacks are told: a failed round (`error`), a hold (`warn`), a lease change (`info`). */
  logger?: Logger;
}

export interface RelayStatus {
  /** Live; hand out copies. */
  readonly stats: OutboxRelayStats;
  /** Records a lease change and tells `onLeaseChange` (only on a change). */
  setLease(lease: 'held' | 'standby'): void;
  /** Counts a failed round and tells `onError`. */
  report(error: unknown): void;
  /** Tells `onError` that reading the backlog for the metrics failed; not a round, so not counted in `failures`. */
  reportBacklog(error: unknown): void;
  /** Records that `topic`'s rows are held (no subscription) and tells `onError`; not counted as a failure. */
  hold(topic: string, error: unknown): void;
  /** Records that `topic`'s publish was refused (not retryable), counts it as a failure and tells `onError`. */
  refuse(topic: string, error: unknown): void;
  /** `topic` was published again: no longer held or refused. */
  unhold(topic: string): void;
}

/**
 * The bookkeeping every outbox relay shares: its stats, and the user's
 * callbacks, whose own failures change nothing (a relay must not stop
 * because a logging callback threw).
 */
export function createRelayStatus(initialLease: 'held' | 'standby', callbacks: RelayStatusCallbacks): RelayStatus {
  const stats: OutboxRelayStats = {
    lease: initialLease,
    published: 0,
    failures: 0,
    held: [],
    refused: [],
    lastError: undefined,
    running: true,
  };
  const call = <T>(callback: ((value: T) => void) | undefined, value: T) => {
    try {
      callback?.(value);
    } catch {
      // The callback's own failure changes nothing.
    }
  };
  return {
    stats,
    setLease(lease) {
      if (stats.lease === lease) return;
      stats.lease = lease;
      call(callbacks.onLeaseChange, lease);
      log(callbacks.logger, 'info', { lease }, `outbox relay: lease ${lease}`);
    },
    report(error) {
      stats.failures++;
      stats.lastError = error;
      call(callbacks.onError, error);
      log(callbacks.logger, 'error', { err: error }, 'outbox relay: round failed');
    },
    reportBacklog(error) {
      call(callbacks.onError, error);
      log(callbacks.logger, 'error', { err: error }, 'outbox relay: reading the backlog failed');
    },
    hold(topic, error) {
      // A new array on every change: copies of the stats handed out stay as they were.
      if (!stats.held.includes(topic)) stats.held = [...stats.held, topic];
      stats.lastError = error;
      call(callbacks.onError, error);
      log(callbacks.logger, 'warn', { topic, err: error }, `outbox relay: topic ${topic} held, no subscription`);
    },
    refuse(topic, error) {
      if (!stats.refused.includes(topic)) stats.refused = [...stats.refused, topic];
      stats.failures++;
      stats.lastError = error;
      call(callbacks.onError, error);
      log(
        callbacks.logger,
        'error',
        { topic, err: error },
        `outbox relay: topic ${topic} held, its publish was refused (not retryable)`,
      );
    },
    unhold(topic) {
      if (stats.held.includes(topic)) stats.held = stats.held.filter((t) => t !== topic);
      if (stats.refused.includes(topic)) stats.refused = stats.refused.filter((t) => t !== topic);
    },
  };
}
