import type { RedisClient } from '../connection.ts';
import { parseAutoClaim, parsePendingHolders, type RawEntry } from './stream-replies.ts';

/** One page of pending entries a reader took over, with each entry's hand-outs so far. */
export interface ClaimedPage {
  entries: RawEntry[];
  counts: Map<string, number>;
}

/**
 * A group reader's recovery of pending entries: it takes over what the group
 * has pending on a partition (its earlier holders', handed back or dead) with
 * `XAUTOCLAIM`, 200 at a time in id order, and counts each entry's hand-outs:
 * for an entry another consumer read, what the entry carries plus each read
 * of it (`XPENDING`, asked before the claim counts one more); for one this
 * reader read itself, the hand-outs it remembered when it dropped the entry
 * (none if it never handed it out).
 *
 * @example
 * const pending = createPendingClaims({ client, group: 'billing', consumer });
 * for await (const page of pending.claim(0, stream, 0)) accept(page.entries, page.counts);
 */
export function createPendingClaims(settings: {
  client: RedisClient;
  group: string;
  consumer: string;
  /** At most this many dropped entries' hand-outs are remembered, the oldest let go first. Default 10,000. */
  mostRemembered?: number;
}) {
  const { client, group, consumer } = settings;
  const most = settings.mostRemembered ?? 10_000;
  /**
   * Hand-outs of entries the reader dropped when it lost their partition, for when it claims them again.
   * An entry another reader claims is never claimed here again: its count stays until pushed out by newer
   * ones (a long-running reader whose partitions move often would otherwise keep them all). One pushed out
   * and claimed here after all counts what the entry carries, as an entry read elsewhere.
   */
  const forgotten = new Map<string, number>();

  return {
    /** The reader dropped these entries of `partition` (they stay pending under its name). */
    remember(partition: number, entries: readonly { id: string; count: number }[]) {
      for (const entry of entries) {
        const key = `${partition} ${entry.id}`;
        forgotten.delete(key);
        forgotten.set(key, entry.count);
      }
      for (const key of forgotten.keys()) {
        if (forgotten.size <= most) break;
        forgotten.delete(key);
      }
    },

    /** How many dropped entries' hand-outs are remembered. */
    remembered: () => forgotten.size,

    /** Claims `partition`'s entries idle at least `minIdleMs`, a page at a time (pages may be empty); stop by `break`. */
    async *claim(partition: number, stream: string, minIdleMs: number): AsyncGenerator<ClaimedPage> {
      let cursor = '0-0';
      do {
        // Sent together (one round trip): the connection runs them in order, the hand-outs read before the claim.
        const [pendingReply, reply] = await Promise.all([
          client.sendCommand(['XPENDING', stream, group, 'IDLE', String(minIdleMs), cursor, '+', '200']),
          client.sendCommand(['XAUTOCLAIM', stream, group, consumer, String(minIdleMs), cursor, 'COUNT', '200']),
        ]);
        const holders = parsePendingHolders(pendingReply);
        const { next, entries } = parseAutoClaim(reply);
        cursor = next;
        const counts = new Map<string, number>();
        for (const { id, fields } of entries) {
          const holder = holders.get(id);
          const carried = Number(fields?.n ?? 0);
          const key = `${partition} ${id}`;
          if (holder?.owner === consumer) counts.set(id, forgotten.get(key) ?? carried);
          else counts.set(id, carried + (holder?.times ?? 1));
          forgotten.delete(key);
        }
        yield { entries, counts };
      } while (cursor !== '0-0');
    },
  };
}
