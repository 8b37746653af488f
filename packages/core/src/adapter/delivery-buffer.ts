import { StoreClosedError } from '../errors/index.ts';
import { isPromiseLike } from '../messaging/consumer-ports.ts';
import type { Message } from '../messaging/message.ts';
import type { Delivery } from '../messaging/transport.ts';
import { settledWithin } from './deadline.ts';

/** One message a broker transport's reader holds (unacknowledged at the broker) until it is settled. */
export interface BufferedEntry {
  message: Message;
  /** The partition it came from. */
  partition: number;
  /**
   * Where the broker numbers its messages (a stream sequence): a key's
   * messages are handed out in this order, whenever each arrived. Without it,
   * in arrival order, a message back from a delay ahead of its key's others.
   */
  seq?: number;
  /** Not handed out before this time (held for a short delay, in flight, or released). */
  visibleAt: number;
  /** Hand-outs so far, here and before (broker deliveries and local ones). */
  count: number;
  /** Bumped on every hand-out, so a settle from an expired delivery is ignored. */
  lease: number;
  /** The subscription holding it, while in flight (until settled or its visibility timeout passes). */
  holder: number | undefined;
  /** Set by the buffer: out of it (settled, away for a delay, dropped), kept in its array until a compaction. */
  gone?: boolean;
}

/** What a delivery's extra fields (`BufferSettler.deliveryFields`) may do with it. */
export interface BufferSettlement {
  /** True while the delivery may still be settled (not settled already, not handed out again since). */
  current(): boolean;
  /** The entry was acknowledged elsewhere (with an inbox's mark): the delivery is settled, the entry goes. */
  settled(): void;
}

/** What the buffer needs from its reader to settle an entry at the broker. */
export interface BufferSettler<E extends BufferedEntry> {
  /** Whether the entry is still this process's to hand out and release (its partition, channel or claim unchanged). */
  holds(entry: E): boolean;
  /**
   * Acknowledges the entry at the broker; a promise it returns is awaited by
   * `Delivery.ack`. Called for a delivery's first ack even when `holds` no
   * longer does (the partition went meanwhile): the settler decides whether
   * the broker may still take it (a fenced ack), or refuses. An ack the
   * broker cannot get (its channel or partition gone, the connection down)
   * throws or rejects, with a retryable `TransportError`: the message comes
   * again, so `Delivery.ack` must not resolve.
   */
  ack(entry: E): void;
  /** Hands the message to the broker, to come again at `dueAt`; false when it could not (it stays here). */
  delay(entry: E, dueAt: number): Promise<boolean>;
  /**
   * Whether the entry may go out now, besides `holds` (default: yes). A
   * reader giving its partition up stops handing it out while what is out
   * may still be settled.
   */
  offers?(entry: E): boolean;
  /** The message of a hand-out (default `entry.message`): a fresh copy, so that a handler's changes do not stay. */
  messageOf?(entry: E): Message;
  /** More fields of every delivery (an adapter's hook for acking inside an inbox's own write). */
  deliveryFields?(entry: E, settlement: BufferSettlement): object;
}

export interface DeliveryBufferOptions {
  /** How long past its due time a key waits for its delayed message before its later ones go on. */
  parkGraceMs: number;
  /** A release shorter than this is held here; a longer one goes through `settler.delay`. */
  holdBelowMs: number;
  /**
   * Told when `settler.delay` throws or rejects instead of resolving false:
   * the message stays here as for a refused delay. Default: nothing told.
   */
  onDelayError?: (error: unknown, message: Message) => void;
}

/**
 * The messages a process holds for one consumer group of a broker
 * transport, handed to its subscriptions as the in-memory transport does,
 * except that messages arrive over time: per key, a message goes out only to
 * the subscription holding the key's earlier messages (or to any, once none
 * is in flight), so one key is in one subscription's hands at a time, in
 * order; a delivery left unsettled past its visibility timeout is handed out
 * again; `release(0)` and short delays stay here, longer delays go to the
 * broker (`settler.delay`) with the key parked (its later messages wait)
 * until the message is back or `parkGraceMs` after it was due.
 *
 * @example
 * const buffer = createDeliveryBuffer<Entry>({ holds, ack, delay }, { parkGraceMs: 5000, holdBelowMs: 100 });
 * buffer.add(entry); // a message from the broker
 * const deliveries = await buffer.receive(subscriber, 10, 1000, signal, 30_000);
 */
export function createDeliveryBuffer<E extends BufferedEntry>(
  settler: BufferSettler<E>,
  options: DeliveryBufferOptions,
) {
  let entries: E[] = [];
  const waiters = new Set<() => void>();
  /**
   * Keys with a message away for a delay: that message, when to stop waiting for it, and the key's messages
   * held here that came before it (a later one deferred on arrival), which go on meanwhile.
   */
  const parked = new Map<string, { entry: E; until: number; before?: ReadonlySet<E> }>();
  /** Releases on their way to the broker, with their entries' partitions. */
  const delaying = new Map<Promise<void>, number>();
  /**
   * Acks on their way to the broker, with their entries' partitions (a reader that stops, or gives a partition
   * up, hands back only once they arrived).
   */
  const acking = new Map<Promise<unknown>, number>();
  let closed = false;

  const wake = () => {
    for (const waiter of waiters) waiter();
  };
  /** Whether the entry is in a subscriber's hands at `at` (handed out, not settled, its visibility not over). */
  const outAt = (e: E, at: number) => !e.gone && e.holder !== undefined && e.visibleAt > at;
  /** Whether a delivery is in a subscriber's hands at `at`. */
  const handedOut = (at: number) => entries.some((e) => outAt(e, at));

  /** Entries marked gone but still in the array: dropped at once when they make half of it (O(1) per removal). */
  let goneCount = 0;
  const compact = () => {
    entries = entries.filter((entry) => !entry.gone);
    goneCount = 0;
  };
  const remove = (entry: E) => {
    if (entry.gone) return;
    entry.gone = true;
    goneCount += 1;
    if (goneCount >= 32 && goneCount * 2 >= entries.length) compact();
  };
  /**
   * Puts a removed entry back: where it was when the array still has it, else at `at` (where it was before a
   * compaction moved the others up), and never behind a held message of its key (it was the key's first).
   */
  const restore = (entry: E, at: number) => {
    if (!entry.gone) return;
    entry.gone = false;
    if (entries.includes(entry)) {
      goneCount -= 1;
      return;
    }
    const key = entry.message.key;
    const first = entries.findIndex((e) => !e.gone && e.message.key === key);
    entries.splice(first >= 0 ? Math.min(first, at) : Math.min(at, entries.length), 0, entry);
  };

  const isParked = (entry: E, at: number) => {
    const park = parked.get(entry.message.key);
    if (!park) return false;
    if (at >= park.until) {
      parked.delete(entry.message.key);
      return false;
    }
    if (park.entry.message.id === entry.message.id) return false;
    // Only the key's messages after the delayed one wait for it.
    const earlier =
      entry.seq !== undefined && park.entry.seq !== undefined
        ? entry.seq < park.entry.seq
        : park.before?.has(entry) === true;
    return !earlier;
  };

  const take = (subscriber: number, max: number, visibility: number): Delivery[] => {
    const at = Date.now();
    const out: Delivery[] = [];
    /** Keys whose next message may not go to this subscriber now (made on the first such key). */
    let blocked: Set<string> | undefined;
    const block = (key: string) => {
      blocked ??= new Set();
      blocked.add(key);
    };
    for (const entry of entries) {
      if (out.length >= max) break;
      if (entry.gone) continue;
      const key = entry.message.key;
      if (blocked?.has(key)) continue;
      if (entry.holder !== undefined && entry.visibleAt > at) {
        // In flight: its key's later messages may follow it to the same subscription only.
        if (entry.holder !== subscriber && settler.holds(entry)) block(key);
        continue;
      }
      // No longer this process's: it goes back to the broker, never to a handler here.
      if (!settler.holds(entry)) continue;
      if (entry.visibleAt > at || isParked(entry, at) || (settler.offers && !settler.offers(entry))) {
        block(key);
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

  /** Sends `entry` to the broker for a delay, its key parked meanwhile; `undo` puts it back here if that fails. */
  const sendAway = (entry: E, dueAt: number, undo: () => void) => {
    // A settler whose delay throws or rejects (its contract is to resolve false) could not move it either: the
    // message stays here, told, rather than a rejection no one handles (a crash on Node's default).
    const sent = (async () => settler.delay(entry, dueAt))().catch((error: unknown) => {
      try {
        options.onDelayError?.(error, entry.message);
      } catch {
        // The hook's own failure changes nothing.
      }
      return false;
    });
    const moving = sent.then((moved) => {
      if (moved) return;
      if (parked.get(entry.message.key)?.entry === entry) parked.delete(entry.message.key);
      entry.visibleAt = dueAt;
      if (settler.holds(entry)) undo();
      wake();
    });
    delaying.set(moving, entry.partition);
    void moving.finally(() => delaying.delete(moving));
  };

  const deliveryOf = (entry: E, lease: number): Delivery => {
    /** Not settled, not handed out again since. */
    const mine = () => entry.lease === lease;
    const current = () => mine() && !entry.gone && settler.holds(entry);
    const settled = () => {
      entry.lease += 1;
      remove(entry);
      wake();
    };
    const delivery: Delivery = {
      message: settler.messageOf ? settler.messageOf(entry) : entry.message,
      deliveryCount: entry.count,
      async ack() {
        if (!mine()) return;
        settled();
        const sent: unknown = settler.ack(entry);
        if (!isPromiseLike(sent)) return;
        const arriving = Promise.resolve(sent);
        acking.set(arriving, entry.partition);
        try {
          await arriving;
        } finally {
          acking.delete(arriving);
        }
      },
      async release(delayMs: number) {
        if (!current()) return;
        entry.lease += 1;
        entry.holder = undefined;
        const delay = Math.max(0, Number(delayMs) || 0);
        const dueAt = Date.now() + delay;
        if (delay < options.holdBelowMs) {
          entry.visibleAt = dueAt;
          wake();
          return;
        }
        // Away from the others while it goes to the broker (resolved at once: the key is parked meanwhile);
        // held here again, where it was, if that fails.
        const at = entries.indexOf(entry);
        remove(entry);
        parked.set(entry.message.key, { entry, until: dueAt + options.parkGraceMs });
        sendAway(entry, dueAt, () => restore(entry, at));
        wake();
      },
      async extend(ms: number) {
        if (mine() && !entry.gone) entry.visibleAt = Date.now() + ms;
      },
    };
    return settler.deliveryFields
      ? Object.assign(delivery, settler.deliveryFields(entry, { current: mine, settled }))
      : delivery;
  };

  const place = (entry: E) => {
    entry.gone = false;
    const key = entry.message.key;
    const returning = parked.get(key)?.entry.message.id === entry.message.id;
    if (returning) parked.delete(key);
    let at = -1;
    const seq = entry.seq;
    if (seq !== undefined) {
      // Behind the key's held messages with a lower sequence (publish order), ahead of those with a higher one.
      for (let i = 0; i < entries.length; i++) {
        const other = entries[i] as E;
        if (!other.gone && other.message.key === key && (other.seq as number) > seq) {
          at = i;
          break;
        }
      }
    } else if (returning) {
      // Back from its delay: ahead of the key's messages that waited for it.
      at = entries.findIndex((e) => !e.gone && e.message.key === key);
    }
    if (at >= 0) entries.splice(at, 0, entry);
    else entries.push(entry);
  };

  const add = (...added: E[]) => {
    for (const entry of added) place(entry);
    if (added.length > 0) wake();
  };

  return {
    /** Messages from the broker (in the order read), due now or within `holdBelowMs`. */
    add,

    /**
     * A message due later than `holdBelowMs` on arrival: sent to the broker
     * for its delay, its key parked (unless one of its earlier messages is)
     * so that the key's later messages wait for it, while those held here
     * that came before it go on; held here if that fails.
     */
    defer(entry: E, dueAt: number) {
      const key = entry.message.key;
      if (!parked.has(key)) {
        // The key's messages held already came before it: they go out meanwhile, its later ones wait.
        const before = new Set(entries.filter((e) => !e.gone && e.message.key === key));
        parked.set(key, { entry, until: dueAt + options.parkGraceMs, before });
      }
      sendAway(entry, dueAt, () => add(entry));
    },

    /** Forgets the held messages `test` picks (the broker took them back), and returns them. */
    drop(test: (entry: E) => boolean): E[] {
      compact();
      const dropped = entries.filter(test);
      if (dropped.length === 0) return dropped;
      entries = entries.filter((entry) => !test(entry));
      for (const entry of dropped) entry.gone = true;
      return dropped;
    },

    /**
     * Waiting receives look again now: for a change the buffer cannot see, such as `offers` turning true
     * (a key an adapter held back may go out).
     */
    wake,

    /**
     * Ends the parks whose delayed message `test` picks (its return will not come here), and wakes waiting
     * receives: the keys' later messages may go out now, not at the parks' ends.
     */
    unpark(test: (entry: E) => boolean) {
      let ended = false;
      for (const [key, park] of parked) {
        if (!test(park.entry)) continue;
        parked.delete(key);
        ended = true;
      }
      if (ended) wake();
    },

    /** The held message `test` picks, if any. */
    find: (test: (entry: E) => boolean): E | undefined => entries.find((e) => !e.gone && test(e)),

    /**
     * Whether a message of `partition` is in a subscription's hands now, or its ack or release is on its way to
     * the broker: settled here first, it would reach a broker whose partition was handed back meanwhile too late.
     */
    busy: (partition: number) => {
      const at = Date.now();
      for (const p of acking.values()) if (p === partition) return true;
      for (const p of delaying.values()) if (p === partition) return true;
      return entries.some((e) => e.partition === partition && outAt(e, at));
    },

    /**
     * The messages of `partition` in subscriptions' hands now (handed out, not settled, their visibility not
     * over): what a reader giving the partition up waits for, and, while one stays out, holds its keys back for.
     */
    inFlight: (partition: number): E[] => {
      const at = Date.now();
      return entries.filter((e) => e.partition === partition && outAt(e, at));
    },

    /** How many messages of `partition` are held here (unacknowledged, not away for a delay). */
    heldIn: (partition: number) => {
      let n = 0;
      for (const entry of entries) if (!entry.gone && entry.partition === partition) n += 1;
      return n;
    },

    /** How many messages are held here (unacknowledged, not away for a delay). */
    size: () => entries.length - goneCount,

    /** What is held and never handed out, for giving back at close. */
    held: () => entries.filter((e) => !e.gone),

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
        // Held entries and parks end without a broker event: look again when the next one is due.
        const rearm = () => {
          clearTimeout(retimer);
          const at = Date.now();
          let next = Number.POSITIVE_INFINITY;
          for (const entry of entries) if (!entry.gone && entry.visibleAt > at) next = Math.min(next, entry.visibleAt);
          // A park past its time ends here: its delayed message went elsewhere (its partition moved), and a wake-up
          // for it would come round every millisecond until an entry of its key passed by.
          for (const [key, park] of parked) {
            if (park.until <= at) parked.delete(key);
            else next = Math.min(next, park.until);
          }
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

    /**
     * Waits (up to `ms` in all) for the deliveries still in subscribers' hands (handed out, their visibility not
     * over) to be settled, and for those acks and releases to reach the broker: a reader that stops hands back
     * what is left, and another process gets it, so one a handler still runs would run twice at once.
     */
    async settled(ms: number) {
      const until = Date.now() + ms;
      for (let left = ms; left > 0; left = until - Date.now()) {
        if (delaying.size > 0 || acking.size > 0) {
          await settledWithin(Promise.allSettled([...delaying.keys(), ...acking.keys()]), left);
          continue;
        }
        if (!handedOut(Date.now())) return;
        // Woken by each settle; a visibility running out wakes nothing, so it looks again every 100 ms.
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            waiters.delete(done);
            resolve();
          };
          const timer = setTimeout(done, Math.min(left, 100));
          waiters.add(done);
        });
      }
    },

    close() {
      closed = true;
      wake();
    },
  };
}

export type DeliveryBuffer<E extends BufferedEntry> = ReturnType<typeof createDeliveryBuffer<E>>;
