import type { RedisClient } from '../connection.ts';
import { parseAutoClaim, parseEntries, parsePendingHolders, type RawEntry } from './stream-replies.ts';

/** One page of pending entries a reader took over, with each entry's hand-outs so far. */
export interface ClaimedPage {
  entries: RawEntry[];
  counts: Map<string, number>;
}

/** At most this many pending entries are claimed in one page. */
const PAGE = 200;

/**
 * A group reader's recovery of pending entries: it takes over what the group
 * has pending on a partition (its earlier holders', handed back or dead) with
 * `XAUTOCLAIM`, a page of up to 200 at a time in id order (as many as its
 * buffer has room for), or picks up stragglers while it
 * holds the partition, and counts each entry's hand-outs: for an entry
 * another consumer read, what the entry carries plus each read of it
 * (`XPENDING`, asked before the claim counts one more); for one this reader
 * read itself, the hand-outs it remembered when it dropped the entry (none if
 * it never handed it out). What it remembers of a partition's entries is also
 * what its hand-back tells their next holder (`handOuts`).
 *
 * @example
 * const pending = createPendingClaims({ client, group: 'billing', consumer });
 * let cursor = '0-0';
 * do {
 *   const page = await pending.claimPage(0, stream, cursor, room());
 *   accept(page.entries, page.counts);
 *   cursor = page.next;
 * } while (cursor !== '0-0');
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
   * Hand-outs of entries the reader dropped when it lost or gave up their partition (beyond what each entry
   * carries), for when it claims them again. An entry another reader claims is never claimed here again: its
   * count stays until pushed out by newer ones (a long-running reader whose partitions move often would
   * otherwise keep them all). One pushed out and claimed here after all counts what the entry carries, as an
   * entry read elsewhere.
   */
  const forgotten = new Map<string, number>();

  /** The hand-outs so far of claimed `entries`, by who held them before the claim. */
  const countsOf = (partition: number, entries: RawEntry[], holders: Map<string, { owner: string; times: number }>) => {
    const counts = new Map<string, number>();
    for (const { id, fields } of entries) {
      const holder = holders.get(id);
      const carried = Number(fields?.n ?? 0);
      const key = `${partition} ${id}`;
      if (holder?.owner === consumer) counts.set(id, carried + (forgotten.get(key) ?? 0));
      else counts.set(id, carried + (holder?.times ?? 1));
      forgotten.delete(key);
    }
    return counts;
  };

  return {
    /**
     * The reader dropped these entries of `partition` (they stay pending under its name): `count` their
     * hand-outs so far, `carried` those of them the entry carries.
     */
    remember(partition: number, entries: readonly { id: string; count: number; carried: number }[]) {
      for (const entry of entries) {
        const key = `${partition} ${entry.id}`;
        forgotten.delete(key);
        forgotten.set(key, entry.count - entry.carried);
      }
      for (const key of forgotten.keys()) {
        if (forgotten.size <= most) break;
        forgotten.delete(key);
      }
    },

    /** How many dropped entries' hand-outs are remembered. */
    remembered: () => forgotten.size,

    /**
     * The remembered entries of `partition`, each with its hand-outs beyond what it carries: the delivery
     * count Redis should keep for it when it is handed back (its reads and claims here count one each, handed
     * out or not).
     */
    handOuts(partition: number): Map<string, number> {
      const prefix = `${partition} `;
      const out = new Map<string, number>();
      for (const [key, times] of forgotten) if (key.startsWith(prefix)) out.set(key.slice(prefix.length), times);
      return out;
    },

    /**
     * Claims up to `count` (at most 200) of what the group has pending on `partition`, whoever holds it, from
     * `cursor` on (`0-0`: the first) in id order; `next` is where the next page starts, `0-0` once the scan
     * reached the end.
     */
    async claimPage(
      partition: number,
      stream: string,
      cursor: string,
      count: number,
    ): Promise<ClaimedPage & { next: string }> {
      const page = String(Math.max(1, Math.min(PAGE, count)));
      // Sent together (one round trip): the connection runs them in order, the hand-outs read before the claim.
      const [pendingReply, reply] = await Promise.all([
        client.sendCommand(['XPENDING', stream, group, cursor, '+', page]),
        client.sendCommand(['XAUTOCLAIM', stream, group, consumer, '0', cursor, 'COUNT', page]),
      ]);
      const { next, entries } = parseAutoClaim(reply);
      return { entries, counts: countsOf(partition, entries, parsePendingHolders(pendingReply)), next };
    },

    /**
     * Claims `partition`'s entries idle at least `minIdleMs` that are not in `held()` (the ids this reader holds
     * now, asked per page), a page at a time; stop by `break`. A claim counts one more delivery in Redis: one of
     * an entry still waiting here would count hand-outs that never were, and its next holder would take them
     * for crashes (`maxDeliveries`).
     */
    async *sweep(
      partition: number,
      stream: string,
      minIdleMs: number,
      held: () => ReadonlySet<string>,
    ): AsyncGenerator<ClaimedPage> {
      let start = '-';
      for (;;) {
        const holders = parsePendingHolders(
          await client.sendCommand(['XPENDING', stream, group, 'IDLE', String(minIdleMs), start, '+', String(PAGE)]),
        );
        const holding = held();
        const ids: string[] = [];
        let last = '';
        for (const [id, { owner }] of holders) {
          last = id;
          if (owner !== consumer || !holding.has(id)) ids.push(id);
        }
        if (ids.length > 0) {
          // Idle still: an entry read again or claimed elsewhere since the look is left alone.
          const reply = await client.sendCommand(['XCLAIM', stream, group, consumer, String(minIdleMs), ...ids]);
          // Deleted entries are dropped from the pending list, not returned.
          const entries = parseEntries(reply).filter((entry) => entry.fields !== undefined);
          yield { entries, counts: countsOf(partition, entries, holders) };
        }
        if (holders.size < PAGE) return;
        start = `(${last}`;
      }
    },
  };
}
