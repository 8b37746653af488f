import type { Delivery, Message } from '@factline/core';
import { StoreClosedError } from '@factline/core';
import { messageFromJson } from '@factline/core/adapter';
import type { ConsumeMessage } from 'amqplib';

/** Headers the transport carries on a message it re-publishes (a delay hop). */
export const COUNT_HEADER = 'x-factline-count';
export const DUE_HEADER = 'x-factline-due';

/** One message a group reader holds (unacknowledged at the broker) until it is acked or moved to a delay tier. */
export interface Entry {
  message: Message;
  raw: ConsumeMessage;
  partition: number;
  /** The channel generation it came on; a later generation means the broker took it back. */
  generation: number;
  /** Not handed out before this time (held for a short delay, in flight, or released). */
  visibleAt: number;
  /** Hand-outs so far, in this process and before its delay hops (not the broker's own redeliveries). */
  count: number;
  /** Bumped on every hand-out, so a settle from an expired delivery is ignored. */
  lease: number;
  /** The subscription holding it, while in flight (until settled or its visibility timeout passes). */
  holder: number | undefined;
}

/** What the buffer needs from its reader to settle an entry at the broker. */
export interface Settler {
  /** The current channel generation. */
  generation(): number;
  ack(entry: Entry): void;
  /** Sends the message through a delay tier, due at `dueAt`, then acks it; false when it could not. */
  delay(entry: Entry, dueAt: number): Promise<boolean>;
}

/** Parsed from a delivery: the envelope, the hand-outs before its delay hops, and when it is due. */
export function readIncoming(raw: ConsumeMessage): { message: Message; count: number; dueAt: number } {
  const message = messageFromJson(raw.content.toString('utf8'));
  const headers = raw.properties.headers ?? {};
  const number = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : 0);
  // The broker's x-delivery-count also counts messages prefetched but never handed out when a connection
  // dropped: the count here is what this transport saw (hand-outs here, carried across delay hops).
  const count = number(headers[COUNT_HEADER]);
  const dueAt = Math.max(number(headers[DUE_HEADER]), message.deliverAt?.getTime() ?? 0);
  return { message, count, dueAt };
}

/**
 * The messages a process holds for one group, handed to its subscriptions as
 * the in-memory transport does, except that messages arrive over time: per
 * key, a message goes out only to the subscription holding the key's earlier
 * messages (or to any, once none is in flight), so one key is in one
 * subscription's hands at a time, in order; a delivery left unsettled past its
 * visibility timeout is handed out again; `release(0)` and short delays stay
 * here, longer delays go through a delay tier with the key parked (its later
 * messages wait) until the message is back or `parkGraceMs` after it was due.
 */
export function createDeliveryBuffer(settler: Settler, options: { parkGraceMs: number; holdBelowMs: number }) {
  const entries: Entry[] = [];
  const waiters = new Set<() => void>();
  /** Keys whose first message is away in a delay tier: its id, and when to stop waiting for it. */
  const parked = new Map<string, { id: string; until: number }>();
  /** Releases on their way to a delay tier. */
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
    const current = () => entry.lease === lease && entry.generation === settler.generation() && entries.includes(entry);
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
        // Away from the others while it goes to its tier (resolved at once: the key is parked meanwhile);
        // held here instead if that fails.
        const at = entries.indexOf(entry);
        remove();
        parked.set(entry.message.key, { id: entry.message.id, until: dueAt + options.parkGraceMs });
        const moving = settler.delay(entry, dueAt).then((moved) => {
          if (moved) return;
          parked.delete(entry.message.key);
          entry.visibleAt = dueAt;
          if (entry.generation === settler.generation()) entries.splice(Math.min(at, entries.length), 0, entry);
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

  return {
    /** A message from the broker, due now or within `holdBelowMs`. */
    add(entry: Entry) {
      const key = entry.message.key;
      const park = parked.get(key);
      if (park?.id === entry.message.id) {
        // Back from its delay: ahead of the key's messages that waited for it.
        parked.delete(key);
        const first = entries.findIndex((e) => e.message.key === key);
        if (first >= 0) entries.splice(first, 0, entry);
        else entries.push(entry);
      } else {
        entries.push(entry);
      }
      wake();
    },

    /** The broker took back every message of an older channel: forget them. */
    dropGeneration(generation: number) {
      for (let i = entries.length - 1; i >= 0; i--)
        if ((entries[i] as Entry).generation <= generation) entries.splice(i, 1);
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
        // Held entries and parks end without a broker event: look again when the next one is due.
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

    /** Waits (up to `ms`) for the releases still on their way to a delay tier. */
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
