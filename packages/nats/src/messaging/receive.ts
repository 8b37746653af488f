import type { Delivery, Message } from '@factline/core';
import { StoreClosedError } from '@factline/core';
import type { JsMsg } from '@nats-io/jetstream';

/** One message a group reader holds (unacknowledged at the server) until it is acked or naked. */
export interface Entry {
  message: Message;
  raw: JsMsg;
  partition: number;
  /** The claim on its partition it came under; a later claim (or none) means it may be someone else's now. */
  epoch: number;
  /** Not handed out before this time (held for a short delay, in flight, or released). */
  visibleAt: number;
  /** Hand-outs so far, here and before (server deliveries and local ones). */
  count: number;
  /** Bumped on every hand-out, so a settle from an expired delivery is ignored. */
  lease: number;
  /** The subscription holding it, while in flight (until settled or its visibility timeout passes). */
  holder: number | undefined;
}

/** What the buffer needs from its reader to settle an entry at the server. */
export interface Settler {
  /** Whether the entry is still this process's (its partition's claim unchanged). */
  holds(entry: Entry): boolean;
  ack(entry: Entry): void;
  /** Hands the message back to the server, to come again at `dueAt` (a nak with delay); false when it could not. */
  delay(entry: Entry, dueAt: number): Promise<boolean>;
}

/**
 * The messages a process holds for one group, handed to its subscriptions as
 * the in-memory transport does, except that messages arrive over time: per
 * key, a message goes out only to the subscription holding the key's earlier
 * messages (or to any, once none is in flight), so one key is in one
 * subscription's hands at a time, in order; a delivery left unsettled past its
 * visibility timeout is handed out again; `release(0)` and short delays stay
 * here, longer delays are naked with a delay, the key parked (its later
 * messages wait) until the message is back or `parkGraceMs` after it was due.
 */
export function createDeliveryBuffer(settler: Settler, options: { parkGraceMs: number; holdBelowMs: number }) {
  const entries: Entry[] = [];
  const waiters = new Set<() => void>();
  /** Keys whose first message is naked with a delay: its id, its partition, and when to stop waiting for it. */
  const parked = new Map<string, { id: string; until: number; partition: number }>();
  /** Releases on their way back to the server. */
  const delaying = new Set<Promise<void>>();
  let closed = false;

  const wake = () => {
    for (const waiter of waiters) waiter();
  };

  const isParked = (entry: Entry, at: number) => {
    const park = parked.get(entry.message.key);
    if (!park) return false;
    if (at >= park.until) {
      parked.delete(entry.message.key);
      return false;
    }
    return park.id !== entry.message.id;
  };

  const take = (subscriber: number, max: number, visibility: number): Delivery[] => {
    const at = Date.now();
    const out: Delivery[] = [];
    const blocked = new Set<string>();
    for (const entry of entries) {
      if (out.length >= max) break;
      const key = entry.message.key;
      if (blocked.has(key)) continue;
      // Its partition was given up: it goes back to the server, never to a handler here.
      if (!settler.holds(entry)) continue;
      if (entry.holder !== undefined && entry.visibleAt > at) {
        // In flight: its key's later messages may follow it to the same subscription only.
        if (entry.holder !== subscriber) blocked.add(key);
        continue;
      }
      if (entry.visibleAt > at || isParked(entry, at)) {
        blocked.add(key);
        continue;
      }
      entry.visibleAt = at + visibility;
      entry.holder = subscriber;
      entry.count += 1;
      entry.lease += 1;
      out.push(deliveryOf(entry, entry.lease));
    }
    return out;
  };

  const deliveryOf = (entry: Entry, lease: number): Delivery => {
    const current = () => entry.lease === lease && settler.holds(entry) && entries.includes(entry);
    const remove = () => entries.splice(entries.indexOf(entry), 1);
    return {
      message: entry.message,
      deliveryCount: entry.count,
      async ack() {
        if (!current()) return;
        remove();
        settler.ack(entry);
        wake();
      },
      async release(delayMs: number) {
        if (!current()) return;
        entry.lease += 1;
        entry.holder = undefined;
        const dueAt = Date.now() + Math.max(0, delayMs);
        if (delayMs < options.holdBelowMs) {
          entry.visibleAt = dueAt;
          wake();
          return;
        }
        // Away from the others while it goes back to the server (resolved at once: the key is parked meanwhile);
        // held here instead if that fails.
        const at = entries.indexOf(entry);
        remove();
        parked.set(entry.message.key, {
          id: entry.message.id,
          until: dueAt + options.parkGraceMs,
          partition: entry.partition,
        });
        const moving = settler.delay(entry, dueAt).then((moved) => {
          if (moved) return;
          parked.delete(entry.message.key);
          entry.visibleAt = dueAt;
          if (settler.holds(entry)) entries.splice(Math.min(at, entries.length), 0, entry);
          wake();
        });
        delaying.add(moving);
        void moving.finally(() => delaying.delete(moving));
        wake();
      },
      async extend(ms: number) {
        if (current()) entry.visibleAt = Date.now() + ms;
      },
    };
  };

  /**
   * A message from the server, due now or within `holdBelowMs`: behind the
   * held messages of its key with a lower stream sequence (publish order),
   * ahead of those with a higher one (a message back from a delay).
   */
  const addEntry = (entry: Entry) => {
    const key = entry.message.key;
    if (parked.get(key)?.id === entry.message.id) parked.delete(key);
    const after = entries.findIndex((e) => e.message.key === key && e.raw.seq > entry.raw.seq);
    if (after >= 0) entries.splice(after, 0, entry);
    else entries.push(entry);
    wake();
  };

  return {
    add: addEntry,

    /**
     * A message due later than `holdBelowMs` on arrival: naked with its delay,
     * its key parked (unless one of its earlier messages is) so that the key's
     * later messages wait for it.
     */
    defer(entry: Entry, dueAt: number) {
      const key = entry.message.key;
      if (!parked.has(key))
        parked.set(key, { id: entry.message.id, until: dueAt + options.parkGraceMs, partition: entry.partition });
      const moving = settler.delay(entry, dueAt).then((moved) => {
        if (moved) return;
        if (parked.get(key)?.id === entry.message.id) parked.delete(key);
        entry.visibleAt = dueAt;
        if (settler.holds(entry)) addEntry(entry);
      });
      delaying.add(moving);
      void moving.finally(() => delaying.delete(moving));
    },

    /** The partition's claim is lost: its messages may be another process's now; forget them. */
    dropPartition(partition: number) {
      for (let i = entries.length - 1; i >= 0; i--)
        if ((entries[i] as Entry).partition === partition) entries.splice(i, 1);
      for (const [key, park] of parked) if (park.partition === partition) parked.delete(key);
    },

    /** Whether the message with this stream sequence is held (a redelivery of it is a duplicate). */
    find: (seq: number) => entries.find((e) => e.raw.seq === seq),

    /** Whether a message of `partition` is in a subscription's hands now. */
    busy: (partition: number) => {
      const at = Date.now();
      return entries.some((e) => e.partition === partition && e.holder !== undefined && e.visibleAt > at);
    },

    /** How many messages of `partition` are held here (unacknowledged, not naked). */
    heldIn: (partition: number) => {
      let n = 0;
      for (const entry of entries) if (entry.partition === partition) n += 1;
      return n;
    },

    /** What is held and never handed out, for giving back at close. */
    held: () => [...entries],

    receive(
      subscriber: number,
      max: number,
      waitMs: number,
      signal: AbortSignal,
      visibility: number,
    ): Promise<Delivery[]> {
      if (closed) return Promise.reject(new StoreClosedError('transport'));
      const ready = take(subscriber, max, visibility);
      if (ready.length > 0 || waitMs <= 0 || signal.aborted) return Promise.resolve(ready);
      return new Promise<Delivery[]>((resolve) => {
        let retimer: ReturnType<typeof setTimeout> | undefined;
        const finish = () => {
          waiters.delete(wakeUp);
          clearTimeout(timer);
          clearTimeout(retimer);
          signal.removeEventListener('abort', onAbort);
        };
        const wakeUp = () => {
          const found = closed ? [] : take(subscriber, max, visibility);
          if (found.length === 0 && !closed) return rearm();
          finish();
          resolve(found);
        };
        const onAbort = () => {
          finish();
          resolve([]);
        };
        // Held entries and parks end without a server event: look again when the next one is due.
        const rearm = () => {
          clearTimeout(retimer);
          const at = Date.now();
          let next = Number.POSITIVE_INFINITY;
          for (const entry of entries) if (entry.visibleAt > at) next = Math.min(next, entry.visibleAt);
          for (const park of parked.values()) next = Math.min(next, park.until);
          if (next !== Number.POSITIVE_INFINITY) retimer = setTimeout(wakeUp, Math.max(1, next - at));
        };
        const timer = setTimeout(() => {
          finish();
          resolve(closed ? [] : take(subscriber, max, visibility));
        }, waitMs);
        waiters.add(wakeUp);
        signal.addEventListener('abort', onAbort, { once: true });
        rearm();
      });
    },

    /** Waits (up to `ms`) for the releases still on their way back to the server. */
    async settled(ms: number) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
      await Promise.race([Promise.allSettled([...delaying]), timedOut]);
      clearTimeout(timer);
    },

    close() {
      closed = true;
      wake();
    },
  };
}

export type DeliveryBuffer = ReturnType<typeof createDeliveryBuffer>;
