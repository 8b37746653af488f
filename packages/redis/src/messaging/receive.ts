import type { Message } from '@factline/core';
import type { ClaimedMessage } from '@factline/core/adapter';
import { type AckTarget, type AckWithMark, ackWithMark } from './ack-with-mark.ts';

/** One stream entry a process holds for a group (pending under its consumer name) until it is acked or released. */
export interface Entry {
  /** The stream entry id. */
  id: string;
  partition: number;
  /** The partition's lease generation it was read under; a later one means the lease changed hands since. */
  generation: number;
  message: Message;
  /** The message as stored (`messageToJson`). */
  json: string;
  /** `message`, until its first hand-out takes it (later hand-outs parse `json` again: a handler may change it). */
  fresh?: Message | undefined;
  /** Not handed out before this time (in flight, or released with no delay). */
  visibleAt: number;
  /** Hand-outs so far (from the pending list and earlier releases, then in this process). */
  count: number;
  /** Bumped on every hand-out, so a settle from an expired delivery is ignored. */
  lease: number;
  /** The subscription holding it, while in flight (until settled or its visibility timeout passes). */
  holder: number | undefined;
  /** Acknowledged: nothing settles it again. */
  done?: boolean;
  /** Out of the buffer (acknowledged, delayed, dropped); the array keeps it until the next compaction. */
  gone?: boolean;
}

/** What the buffer needs from its reader to settle an entry in Redis. */
export interface Settler {
  /** True while this process holds the entry's partition under the generation it was read with. */
  current(entry: Entry): boolean;
  /** `XACK`s the entry while this reader's lease of its partition holds (else leaves it to the new holder). */
  ack(entry: Entry): Promise<void>;
  /** Where the entry's ack goes when the Redis inbox writes it with the mark (see ack-with-mark.ts). */
  ackTarget(entry: Entry): AckTarget;
  /** The inbox acked the entry with its mark: there is room for more. */
  acked(): void;
  /** The entry's partition lease was found with another holder: it is that holder's now. */
  fenced(entry: Entry): void;
  /** Acks the entry and schedules its copy for `dueAt` (sorted set); false when that failed. */
  delay(entry: Entry, dueAt: number): Promise<boolean>;
  /** Something may have become ready: waiting receivers should look again. */
  changed(): void;
}

/**
 * The entries a process holds for one group, handed to its subscriptions:
 * per key, a message goes out only to the subscription holding the key's
 * earlier messages (or to any, once none is in flight), so one key is in one
 * subscription's hands at a time, in order; a delivery left unsettled past
 * its visibility timeout is handed out again; `release(0)` stays here, a
 * delayed release goes to the sorted set of due messages with its key parked
 * (the key's later messages wait) until the message is back or `parkGraceMs`
 * after it was due.
 */
export function createGroupBuffer(settler: Settler, options: { parkGraceMs: number }) {
  let entries: Entry[] = [];
  /** Keys whose first message is away in the delayed set: its id, and when to stop waiting for it. */
  const parked = new Map<string, { id: string; until: number }>();

  const isParked = (entry: Entry, at: number) => {
    const park = parked.get(entry.message.key);
    if (!park) return false;
    if (at >= park.until) {
      parked.delete(entry.message.key);
      return false;
    }
    return park.id !== entry.message.id;
  };

  /** Entries marked gone but still in the array: dropped at once when they make half of it (O(1) per removal). */
  let goneCount = 0;
  const compact = () => {
    entries = entries.filter((entry) => !entry.gone);
    goneCount = 0;
  };
  const remove = (entry: Entry) => {
    if (entry.gone) return;
    entry.gone = true;
    goneCount += 1;
    if (goneCount >= 32 && goneCount * 2 >= entries.length) compact();
  };
  /** Puts a removed entry back, where it was when it is still in the array, else at `at`. */
  const restore = (entry: Entry, at: number) => {
    if (!entry.gone) return;
    entry.gone = false;
    if (entries.includes(entry)) goneCount -= 1;
    else entries.splice(Math.min(at, entries.length), 0, entry);
  };

  const claimed = (entry: Entry, lease: number): ClaimedMessage => {
    const current = () => entry.lease === lease && !entry.done;
    const parsed = entry.fresh;
    entry.fresh = undefined;
    return {
      message: entry.json,
      ...(parsed ? { parsed } : {}),
      deliveryCount: entry.count,
      // The Redis inbox acks the entry in the script writing the mark, and tells the outcome here.
      extra: (committed) => {
        const settle: AckWithMark = {
          target: settler.ackTarget(entry),
          id: entry.id,
          current,
          acked() {
            entry.done = true;
            remove(entry);
            committed();
            settler.acked();
          },
          fenced() {
            entry.done = true;
            remove(entry);
            committed();
            settler.fenced(entry);
          },
        };
        return { [ackWithMark]: settle };
      },
      row: {
        async ack() {
          if (!current()) return;
          entry.done = true;
          remove(entry);
          // Acked even when this process saw its lease move on meanwhile, unless Redis shows another holder:
          // then the entry is the new holder's (the fencing check), else a duplicate is avoided.
          await settler.ack(entry);
        },
        async release(delayMs) {
          if (!current() || entry.gone || !settler.current(entry)) return false;
          entry.lease += 1;
          entry.holder = undefined;
          const dueAt = Date.now() + delayMs;
          if (delayMs <= 0) {
            entry.visibleAt = dueAt;
            return true;
          }
          const at = entries.indexOf(entry);
          remove(entry);
          parked.set(entry.message.key, { id: entry.message.id, until: dueAt + options.parkGraceMs });
          if (await settler.delay(entry, dueAt)) return true;
          // Kept here instead (still pending in Redis), due at the same time.
          parked.delete(entry.message.key);
          entry.visibleAt = dueAt;
          if (settler.current(entry)) restore(entry, at);
          return true;
        },
        async extend(ms) {
          if (current() && !entry.gone) entry.visibleAt = Date.now() + ms;
        },
      },
    };
  };

  return {
    /** Entries read from Redis, in stream order. */
    add(added: readonly Entry[]) {
      for (const entry of added) {
        const key = entry.message.key;
        const park = parked.get(key);
        if (park?.id === entry.message.id) {
          // Back from its delay: ahead of the key's messages that waited for it.
          parked.delete(key);
          const first = entries.findIndex((e) => !e.gone && e.message.key === key);
          if (first >= 0) entries.splice(first, 0, entry);
          else entries.push(entry);
        } else {
          entries.push(entry);
        }
      }
      if (added.length > 0) settler.changed();
    },

    /** Up to `max` deliveries for `subscriber`, keeping each key with one subscription at a time. */
    take(subscriber: number, max: number, visibility: number, active: (partition: number) => boolean) {
      const at = Date.now();
      const out: ClaimedMessage[] = [];
      const blocked = new Set<string>();
      for (const entry of entries) {
        if (out.length >= max) break;
        if (entry.gone) continue;
        const key = entry.message.key;
        if (blocked.has(key)) continue;
        if (entry.holder !== undefined && entry.visibleAt > at) {
          // In flight: its key's later messages may follow it to the same subscription only.
          if (entry.holder !== subscriber) blocked.add(key);
          continue;
        }
        if (entry.visibleAt > at || isParked(entry, at) || !active(entry.partition) || !settler.current(entry)) {
          blocked.add(key);
          continue;
        }
        entry.visibleAt = at + visibility;
        entry.holder = subscriber;
        entry.count += 1;
        entry.lease += 1;
        out.push(claimed(entry, entry.lease));
      }
      return out;
    },

    /**
     * The ids of the entries of `partition` held here, to skip those claimed again from the pending list (a
     * new entry, read with `>`, is never held already: the set is only built for a claim).
     */
    heldIds(partition: number): Set<string> {
      const ids = new Set<string>();
      for (const entry of entries) if (!entry.gone && entry.partition === partition) ids.add(entry.id);
      return ids;
    },

    /** Forgets the entries of a partition this process no longer reads (its lease went elsewhere or back). */
    dropPartition(partition: number): Entry[] {
      compact();
      const dropped = entries.filter((entry) => entry.partition === partition);
      entries = entries.filter((entry) => entry.partition !== partition);
      for (const entry of dropped) entry.gone = true;
      return dropped;
    },

    /** True while an entry of `partition` is handed out and not settled nor expired. */
    inFlight(partition: number) {
      const at = Date.now();
      return entries.some((e) => !e.gone && e.partition === partition && e.holder !== undefined && e.visibleAt > at);
    },

    /** When something held becomes ready by time alone (a visibility timeout, a release, a park's end). */
    nextChange(): number | undefined {
      const at = Date.now();
      let next = Number.POSITIVE_INFINITY;
      for (const entry of entries) if (!entry.gone && entry.visibleAt > at) next = Math.min(next, entry.visibleAt);
      for (const park of parked.values()) next = Math.min(next, park.until);
      return next === Number.POSITIVE_INFINITY ? undefined : next;
    },

    get size() {
      return entries.length - goneCount;
    },
  };
}

export type GroupBuffer = ReturnType<typeof createGroupBuffer>;
