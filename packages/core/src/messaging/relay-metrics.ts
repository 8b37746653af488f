import { observeMetrics } from '../tracing/metrics.ts';
import type { Outbox } from './outbox-relay.ts';
import type { OutboxRelayStats } from './relay-status.ts';

/**
 * Registers a relay's instruments, read at each collection: messages
 * published (from its stats) and, when the outbox can tell
 * (`Outbox.backlog`), the rows waiting and the age of the oldest one. A
 * failed backlog read is reported (as a failed round is) and leaves those two
 * points out. Returns their removal.
 *
 * @example
 * const unobserve = observeRelay(outbox, stats, report);
 */
export function observeRelay(
  outbox: Outbox,
  stats: OutboxRelayStats,
  report: (error: unknown) => void,
  now: () => number = Date.now,
): () => void {
  const backlog = outbox.backlog?.bind(outbox);
  return observeMetrics(
    (i) => (backlog === undefined ? [i.relayPublished] : [i.relayPublished, i.outboxBacklog, i.relayLag]),
    async (i, result) => {
      result.observe(i.relayPublished, stats.published);
      if (backlog === undefined) return;
      try {
        const { rows, oldestAt } = await backlog();
        result.observe(i.outboxBacklog, rows);
        result.observe(i.relayLag, oldestAt === undefined ? 0 : Math.max(0, (now() - oldestAt) / 1000));
      } catch (error) {
        report(error);
      }
    },
  );
}
