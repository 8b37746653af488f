import { ValidationError } from '../errors/index.ts';
import { createInMemoryLeases } from '../lease/in-memory.ts';
import type { LeaseGuard } from '../lease/lease-guard.ts';
import { createLeasedLoop, type LeasedWork } from '../lease/leased-loop.ts';
import type { Lease } from '../lease/types.ts';
import type { Logger } from '../logging/logger.ts';
import { checkOptions } from '../options/check-options.ts';
import { assertIntegerOption } from '../store/validation.ts';
import { sharedIdAttributes, traceInternal } from '../tracing/messaging-spans.ts';
import type { Message } from './message.ts';
import { createOutboxHold } from './outbox-hold.ts';
import { observeRelay } from './relay-metrics.ts';
import { createRelayStatus, type OutboxRelayStats } from './relay-status.ts';
import type { Transport } from './transport.ts';
import { createWakeablePause } from './wakeable-pause.ts';

/** One row of an outbox: its place in the outbox's order, its topic and the message. */
export interface OutboxRow {
  /** The row's key in the outbox (its sequence number), given back to `remove`. */
  seq: number | string;
  topic: string;
  message: Message;
}

/**
 * What a relay needs of an outbox, on any database: the table's statements
 * and its wake-up, nothing else.
 */
export interface Outbox {
  /**
   * Up to `limit` committed rows, oldest first, leaving out the rows of
   * `skipTopics` (held topics whose retry is not due). `undefined` when the
   * outbox cannot be read now (SQLite: a transaction is open on its
   * connection): the relay reads again after `pollMs`, and takes no topic
   * for gone, as it does after a short page.
   */
  read(limit: number, skipTopics: readonly string[]): Promise<OutboxRow[] | undefined>;
  /** Deletes published rows, in one transaction. */
  remove(seqs: readonly (number | string)[]): Promise<void>;
  /** Calls `listener` when an enqueue may have committed; returns its removal. */
  onEnqueue(listener: () => void): () => void;
  /**
   * Rows waiting and the oldest one's enqueue time (ms since the epoch,
   * `undefined` when empty) or age; read at metric collection only.
   * Optional: an outbox without it reports no backlog or relay lag.
   */
  backlog?(): Promise<OutboxBacklog>;
  /**
   * The table this port reads, compared with `===` (a file's path, an object
   * per pool and schema): relays of one process whose ports name the same
   * table (one holding the lease, others standing by) count its backlog once.
   * Default: the port object itself.
   */
  readonly table?: string | object;
}

/** What an outbox holds right now, for the backlog and relay-lag gauges. */
export interface OutboxBacklog {
  rows: number;
  oldestAt: number | undefined;
  /**
   * The oldest row's age, ms, measured where its enqueue time was written
   * (a database's `now()` against the time it wrote): the relay lag is then
   * this, not the relay's clock less `oldestAt`, so the two clocks
   * disagreeing does not show as lag. Absent: `oldestAt` and the relay's clock.
   */
  oldestAgeMs?: number;
}

export interface OutboxRelayOptions {
  /** Rows read (and published) per round. Default 100. */
  batchSize?: number;
  /**
   * How often the holder looks for rows while idle (rows written where no
   * wake-up reaches), ms: a whole number from 1 to 2147483647. Default 100.
   */
  pollMs?: number;
  /**
   * While no subscription to a topic is declared, or while the transport
   * refuses its publish as not retryable, its rows are held, tried again
   * after `pollMs`, doubling up to this, ms: a whole number from 1 to
   * 2147483647 (a timer's limit). Default 5000.
   */
  holdBackoffMaxMs?: number;
  /**
   * Called when a round or a lease check fails (the relay tries again), on
   * every refused publish, and on every hold of a topic with no subscription.
   */
  onError?: (error: unknown) => void;
  /** Called when this relay takes (`'held'`) or loses (`'standby'`) the lease. */
  onLeaseChange?: (lease: 'held' | 'standby') => void;
  /** Told what `onError` and `onLeaseChange` are told. Pino's shape. Default: no output. */
  logger?: Logger;
}

export interface OutboxRelaySettings extends OutboxRelayOptions {
  /** The lease that keeps one relay publishing across processes; none: this relay always publishes. */
  lease?: Lease;
  /**
   * How often the lease is renewed (held) or tried (standing by), ms: a whole
   * number from 1 to 2147483647. A lease call unanswered max(`leaseCheckMs`,
   * 1000) ms is abandoned and told to `onError` as a `TimeoutError`; a
   * renewal abandoned this way stops the publishing as a lost lease would.
   */
  leaseCheckMs: number;
  /** Runs after the relay stopped and gave up its lease (closes the lease's backend). */
  close?: () => Promise<void>;
}

export interface OutboxRelay {
  /**
   * Resolves once the relay's first lease check ran: it then holds the lease
   * (and publishes) or stands by. A failed check is reported, not thrown.
   */
  ready(): Promise<void>;
  /**
   * Stops after the publish in flight and gives up the lease. A lease call
   * that never answers (the first take included) is abandoned after
   * max(`leaseCheckMs`, 1000) ms, told to `onError` as a `TimeoutError`.
   */
  stop(): Promise<void>;
  stats(): OutboxRelayStats;
}

const roundAttributes = (rows: readonly OutboxRow[]) => {
  return {
    'messaging.batch.message_count': rows.length,
    ...sharedIdAttributes(rows.map((row) => row.message)),
  };
};

/**
 * Publishes an outbox's rows to `transport`, in one process at a time (the
 * holder of `lease`), at least once and in outbox order: it reads up to
 * `batchSize` rows, oldest first, publishes each run of consecutive rows of
 * one topic, and deletes those rows only once their publish resolved, so a
 * crash or failure in between publishes them again (consumers' inboxes drop
 * the repeats by message id). Before every publish it checks that its lease
 * still holds, so a holder that lost it stops within one publish. A topic with
 * no declared subscription, or whose publish the transport refused as not
 * retryable, is held, never dropped, and holds back no other topic
 * (`createOutboxHold`).
 *
 * Adapters give the outbox's statements (`Outbox`) and their lease; this loop
 * is the same on every database.
 */
export function startOutboxRelay(outbox: Outbox, transport: Transport, settings: OutboxRelaySettings): OutboxRelay {
  if (typeof outbox?.read !== 'function' || typeof transport?.publish !== 'function') {
    throw new ValidationError({ path: 'relay', message: 'needs an outbox and a transport' });
  }
  const batchSize = assertIntegerOption(settings.batchSize, 'batchSize', 1) ?? 100;
  // The timers' delays: Node fires one longer than a timer's limit after 1 ms. A held topic's
  // longest wait is bounded as a timer is: past it a topic subscribed since waits weeks or ages.
  const timers = checkOptions(
    { pollMs: settings.pollMs, leaseCheckMs: settings.leaseCheckMs, holdBackoffMaxMs: settings.holdBackoffMaxMs },
    { pollMs: 'timer-ms', leaseCheckMs: 'timer-ms', holdBackoffMaxMs: 'timer-ms' },
    'startOutboxRelay',
  );
  const pollMs = timers.pollMs ?? 100;
  const holdBackoffMaxMs = timers.holdBackoffMaxMs ?? 5000;
  const leaseCheckMs = timers.leaseCheckMs as number;
  const status = createRelayStatus(settings.lease ? 'standby' : 'held', settings);
  const { stats, setLease, report } = status;
  const hold = createOutboxHold(status, { initialMs: pollMs, maxMs: holdBackoffMaxMs });

  /** One round: returns how many rows it read. */
  const round = async (holds: () => Promise<boolean>, publishing: () => boolean): Promise<number> => {
    const skipped = hold.skipped();
    const rows = await outbox.read(batchSize, skipped);
    // Nothing read: no conclusion about what is waiting (a held topic keeps its hold and its backoff).
    if (rows === undefined) return 0;
    if (rows.length < batchSize) hold.readAll(skipped, new Set(rows.map((row) => row.topic)));
    if (rows.length === 0) return 0;
    // A span per round that found rows (idle rounds make none), the sends inside it.
    await traceInternal(
      'relay outbox',
      () => roundAttributes(rows),
      () => publishRows(rows, holds, publishing),
    );
    return rows.length;
  };

  /** Publishes `rows` in runs of one topic, deleting each run once published. */
  const publishRows = async (rows: OutboxRow[], holds: () => Promise<boolean>, publishing: () => boolean) => {
    /** Topics held in this round: none of their later rows may go out before the held ones. */
    const heldNow = new Set<string>();
    let done = 0;
    // Lost the lease meanwhile: another relay publishes from here on.
    while (done < rows.length && publishing() && (await holds())) {
      const topic = rows[done]?.topic as string;
      let end = done;
      while (end < rows.length && rows[end]?.topic === topic) end++;
      const run = rows.slice(done, end);
      done = end;
      if (heldNow.has(topic)) continue;
      if (
        !(await hold.publish(
          transport,
          topic,
          run.map((row) => row.message),
        ))
      ) {
        heldNow.add(topic);
        continue;
      }
      stats.published += run.length;
      await outbox.remove(run.map((row) => row.seq));
    }
  };

  /** The publishing loop of one term of the lease. */
  let term: { publishing: boolean; done: Promise<void>; stop(): void } | undefined;
  const startTerm = (guard: LeaseGuard) => {
    const { pause, wake, stop } = createWakeablePause();
    const unsubscribe = outbox.onEnqueue(wake);
    const current = {
      publishing: true,
      done: Promise.resolve(),
      stop() {
        current.publishing = false;
        unsubscribe();
        stop();
      },
    };
    current.done = (async () => {
      while (current.publishing) {
        let read = 0;
        try {
          read = await round(
            () => guard.holds(),
            () => current.publishing,
          );
        } catch (error) {
          report(error);
          await pause(pollMs);
          continue;
        }
        // A holder whose lease lapsed waits for the lease check to stop this term (or renew it).
        if (read < batchSize || !guard.holdsNow()) await pause(pollMs);
      }
    })();
    term = current;
  };

  const work: LeasedWork = {
    // No lease: one of its own that nobody else can take, so this relay publishes from the start.
    lease: settings.lease ?? createInMemoryLeases().lease('outbox'),
    async start(guard) {
      startTerm(guard);
    },
    async stop() {
      const current = term;
      term = undefined;
      current?.stop();
      await current?.done;
    },
  };
  const loop = createLeasedLoop([work], {
    checkMs: leaseCheckMs,
    onError: (_work, error) => report(error),
    onLeaseChange: (_work, lease) => setLease(lease),
    close: settings.close,
    startFailures: 'report',
  });
  // Never rejects: a failed first take is reported and tried again at the next check.
  const started = loop.start();
  const unobserve = observeRelay(outbox, stats, status.reportBacklog);

  return {
    ready: () => started,
    async stop() {
      // Not behind `started`: the loop's stop ends the checks, the first one included.
      await loop.stop();
      await started;
      unobserve();
      setLease('standby');
      stats.running = false;
    },
    stats: () => ({ ...stats }),
  };
}
