import type { BatchObservableResult } from '@opentelemetry/api';
import { type FactlineInstruments, sharedObservation } from '../tracing/metrics.ts';
import type { Outbox, OutboxBacklog } from './outbox-relay.ts';
import type { OutboxRelayStats } from './relay-status.ts';

/** One running relay, as the process's relay points read it. */
interface ObservedRelay {
  outbox: Outbox;
  stats: OutboxRelayStats;
  report: (error: unknown) => void;
  now: () => number;
}

/**
 * The relays of this process. Their instruments have no attributes, so one
 * callback reports them all: two callbacks observing the same point would
 * each replace the other's value.
 */
const running = new Set<ObservedRelay>();
/** What relays stopped since the process started had published: kept in the total, so the counter never goes down. */
let stoppedPublished = 0;
/** The callback every running relay holds: registered by the first, removed with the last. */
const hold = sharedObservation((i) => [i.relayPublished, i.outboxBacklog, i.relayLag], observeRelays);

/**
 * Registers a relay's instruments, read at each collection: messages
 * published (from its stats) and, when the outbox can tell
 * (`Outbox.backlog`), the rows waiting and the age of the oldest one. Every
 * relay of the process goes into the same points: `factline.relay.published`
 * is the sum of their counts, `factline.outbox.backlog` the sum of the rows
 * of their outboxes (each table once, by `Outbox.table`), `factline.relay.lag` the oldest row
 * of any. A failed backlog read goes to `report` (the relay's `onError` and
 * logger, not counted as a failed round) and leaves those two points out.
 * Returns their removal.
 *
 * @example
 * const unobserve = observeRelay(outbox, status.stats, status.reportBacklog);
 */
export function observeRelay(
  outbox: Outbox,
  stats: OutboxRelayStats,
  report: (error: unknown) => void,
  now: () => number = Date.now,
): () => void {
  const relay: ObservedRelay = { outbox, stats, report, now };
  running.add(relay);
  const release = hold();
  return () => {
    if (!running.delete(relay)) return;
    stoppedPublished += stats.published;
    release();
  };
}

/** The points of every running relay (and the count of those stopped). */
async function observeRelays(i: FactlineInstruments, result: BatchObservableResult): Promise<void> {
  const relays = [...running];
  result.observe(
    i.relayPublished,
    relays.reduce((sum, relay) => sum + relay.stats.published, stoppedPublished),
  );
  // One read per table: relays of one outbox each have a port of their own.
  const outboxes = new Map<string | object, ObservedRelay>();
  for (const relay of relays) {
    if (typeof relay.outbox.backlog === 'function') outboxes.set(relay.outbox.table ?? relay.outbox, relay);
  }
  if (outboxes.size === 0) return;
  let failed = false;
  const backlogs = await Promise.all(
    [...outboxes.values()].map((relay) =>
      (relay.outbox.backlog as () => Promise<OutboxBacklog>).call(relay.outbox).then(
        (backlog) => ({ backlog, now: relay.now() }),
        (error: unknown) => {
          failed = true;
          relay.report(error);
          return undefined;
        },
      ),
    ),
  );
  if (failed) return;
  let rows = 0;
  let lag = 0;
  for (const read of backlogs) {
    if (read === undefined) continue;
    rows += read.backlog.rows;
    const { oldestAgeMs, oldestAt } = read.backlog;
    const age = oldestAgeMs ?? (oldestAt === undefined ? undefined : read.now - oldestAt);
    if (age !== undefined) lag = Math.max(lag, age / 1000);
  }
  result.observe(i.outboxBacklog, rows);
  result.observe(i.relayLag, lag);
}
