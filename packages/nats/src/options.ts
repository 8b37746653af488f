import type { DeadLetterStore } from '@factline/core';
import {
  checkOptions,
  MAX_TIMER_MS,
  type OptionKind,
  type OptionSpecOf,
  tlsOptionProblem,
} from '@factline/core/adapter';
import type { NatsTlsOptions } from './connection.ts';

/**
 * Where a transport failure happened, as told to `onError`; `delay`: a release with a delay (a nak) the client
 * would not send (its connection closed), the message held in the process until due instead; `topology`: the
 * stream or a key-value bucket was found missing at the server (deleted) and is made again.
 */
export type NatsErrorStage = 'connection' | 'consume' | 'dead-letters' | 'delay' | 'claim' | 'topology';

export interface NatsTransportOptions {
  /**
   * `nats://host:port` (or `tls://`: TLS required of every server),
   * optionally `nats://user:password@host:port`; several comma-separated, all
   * `nats://` or all `tls://`.
   */
  url: string;
  /**
   * For a `tls://` URL: the CA that signs the servers' certificates, and the
   * client certificate and key for a server that verifies clients
   * (`verify: true`), as PEM text. Default: Node's trusted CAs (and
   * `NODE_EXTRA_CA_CERTS`), no client certificate.
   */
  tls?: NatsTlsOptions;
  /**
   * Names the JetStream stream `<application>` (subjects `<application>.>`)
   * and everything else the transport creates. Several services of one
   * application share it. Letters, digits, `-`, `_`; at most 64 characters.
   */
  application: string;
  /**
   * Durable consumers per (topic, group), each held by one process at a time:
   * a key always goes to the same partition, so its messages are handled in
   * publish order; different partitions run in parallel. The same for every
   * process of an application: the first use of a topic records its count
   * (the `<app>_partitions` bucket) and another count is refused. Default 4.
   */
  partitions?: number;
  /** Unacknowledged messages one process holds per partition (pull batch). Default 64. */
  prefetch?: number;
  /**
   * `max_deliver` of every consumer: the server stops handing out a message
   * delivered this often without an ack (a crash loop); it is then recorded
   * in the dead-letter store. Every delivery counts, also a give-back at a
   * handover (close, rebalance, lost claim) of messages only pulled ahead, up
   * to `prefetch` (and as many behind a gate): a budget for retries and
   * handovers. Default 20 (the server's default is unlimited).
   */
  maxDeliver?: number;
  /**
   * `ack_wait` of every consumer: an unacknowledged message of a dead process
   * comes back after it. From 1000 to 2147483647 (a timer's limit). Default 30000 ms.
   */
  ackWaitMs?: number;
  /**
   * Publishes carry `Nats-Msg-Id` = the topic and the message id, so the
   * server stores a message published again to the same topic within the
   * duplicate window once (a relay retry after an unknown outcome); the same
   * message published to two topics is stored for each. `false` leaves the header out: every publish
   * is stored (the inbox still applies a message once). Default true.
   */
  deduplicate?: boolean;
  /** The stream's duplicate window: a publish repeated within it (same message id) is stored once. Default 120000 ms. */
  duplicateWindowMs?: number;
  /**
   * How long a process's claim on a partition lasts without renewal (it is
   * renewed every third of it): after a process dies, its partitions pass to
   * the others after at most this. From 300 to 2147483647. Default 10000 ms.
   */
  claimTtlMs?: number;
  /**
   * The store consumers use when given none (`defaultDeadLetterStore`), and
   * where messages the server stopped delivering (`maxDeliver`) are recorded:
   * an SQL dead-letter store from @factline/sqlite or @factline/postgres.
   */
  deadLetters?: DeadLetterStore;
  /** How long `getNatsTransport` waits for the server, at most 2147483647. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Wait between reconnect attempts (plus up to 100 ms jitter), at most 2147483647; the client retries for ever. Default 250 ms. */
  reconnectWaitMs?: number;
  /**
   * Told every failure the transport handles itself (lost connection, a failed pull, a lost claim, the stream
   * or a bucket made again after it was deleted at the server).
   */
  onError?: (error: unknown, context: { stage: NatsErrorStage }) => void;
  /** Shown in the server's connection list (`/connz`). */
  connectionName?: string;
}

/** The check of `application` (it names the stream and the claim bucket), for every option object that takes one. */
export const applicationOption = (value: unknown) =>
  typeof value === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(value)
    ? undefined
    : 'must be 1 to 64 letters, digits, "-" or "_"';

/** A timer's delay of at least `min` ms: up to `MAX_TIMER_MS`, as Node fires a longer timer after 1 ms. */
const timerAtLeast =
  (min: number): OptionKind =>
  (value) =>
    Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= MAX_TIMER_MS
      ? undefined
      : `must be a whole number of milliseconds from ${min} to ${MAX_TIMER_MS} (a timer's limit)`;

const spec: OptionSpecOf<NatsTransportOptions> = {
  url: 'non-empty-string',
  tls: tlsOptionProblem,
  application: applicationOption,
  partitions: 'positive-integer',
  prefetch: 'positive-integer',
  maxDeliver: (value) =>
    value === undefined || (Number.isSafeInteger(value) && (value as number) >= 2)
      ? undefined
      : 'must be a whole number, at least 2: the last delivery is the one dead-lettered, never handed to a handler',
  // Timers' delays: the keep-alive every third of ackWaitMs, the claims' renewal and watch (a third, a sixth of
  // claimTtlMs), the connect and publish deadlines, the client's reconnect wait. The duplicate window is the server's.
  ackWaitMs: timerAtLeast(1000),
  deduplicate: 'boolean',
  duplicateWindowMs: 'positive-integer',
  claimTtlMs: timerAtLeast(300),
  deadLetters: 'object',
  connectTimeoutMs: 'timer-ms',
  reconnectWaitMs: 'timer-ms',
  onError: 'function',
  connectionName: 'non-empty-string',
};

/** The options with their defaults; a `ValidationError` names every unknown or bad option. */
export function checkNatsTransportOptions(given: NatsTransportOptions) {
  const options = checkOptions(given, spec, 'getNatsTransport', {
    required: ['url', 'application'],
    optional: false,
  });
  return {
    ...options,
    partitions: options.partitions ?? 4,
    prefetch: options.prefetch ?? 64,
    maxDeliver: options.maxDeliver ?? 20,
    ackWaitMs: options.ackWaitMs ?? 30_000,
    deduplicate: options.deduplicate ?? true,
    duplicateWindowMs: options.duplicateWindowMs ?? 120_000,
    claimTtlMs: options.claimTtlMs ?? 10_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    reconnectWaitMs: options.reconnectWaitMs ?? 250,
  };
}

export type CheckedNatsOptions = ReturnType<typeof checkNatsTransportOptions>;
