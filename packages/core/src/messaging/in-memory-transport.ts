import { NoSubscriptionError, StoreClosedError } from '../errors/index.ts';
import { checkInMemoryTransportOptions, checkSubscribeOptions } from '../options/core-options.ts';
import { assertName } from '../store/validation.ts';
import type { Message } from './message.ts';
import { assertMessages } from './message-validation.ts';
import { checkTransportPublishOptions } from './publish-options.ts';
import type { Delivery, SubscribeOptions, Subscription, Transport } from './transport.ts';

interface Entry {
  message: Message;
  /** Not handed out before this time (delayed delivery, released with a delay, or in flight). */
  visibleAt: number;
  inFlight: boolean;
  deliveryCount: number;
  /** Bumped on every hand-out, so a settle from an expired delivery is ignored. */
  lease: number;
}

interface Group {
  entries: Entry[];
  waiters: Set<() => void>;
}

export interface InMemoryTransportOptions {
  /** Clock; defaults to `Date.now`. */
  now?: () => number;
}

/**
 * A transport in memory, for users' unit tests: fan-out to every group of a
 * topic, competing consumers within a group, delayed delivery, visibility
 * timeouts (an unsettled delivery comes back). The messages of one key go to
 * one subscription at a time, in publish order: a message is handed out only
 * with every earlier message of its key in the same hand-out, so a key whose
 * earliest message is in flight or not yet due waits whole. A group receives
 * the messages published after its subscription was declared
 * (`declareSubscription`, or its first `subscribe`), as with a broker queue
 * bound to a topic, and keeps them while no consumer runs. Nothing survives
 * the process.
 */
export function getInMemoryTransport(given?: InMemoryTransportOptions): Transport {
  const options = checkInMemoryTransportOptions(given) ?? {};
  const now = options.now ?? Date.now;
  const topics = new Map<string, Map<string, Group>>();
  let closed = false;

  const groupsOf = (topic: string) => {
    let groups = topics.get(topic);
    if (!groups) {
      groups = new Map();
      topics.set(topic, groups);
    }
    return groups;
  };

  const wake = (group: Group) => {
    for (const waiter of group.waiters) waiter();
  };

  const enqueue = (group: Group, messages: readonly Message[]) => {
    for (const message of messages) {
      group.entries.push({
        message,
        visibleAt: message.deliverAt?.getTime() ?? 0,
        inFlight: false,
        deliveryCount: 0,
        lease: 0,
      });
    }
    wake(group);
  };

  const declare = (topic: string, groupName: string): Group => {
    const groups = groupsOf(topic);
    let group = groups.get(groupName);
    if (!group) {
      group = { entries: [], waiters: new Set() };
      groups.set(groupName, group);
    }
    return group;
  };

  return {
    system: 'in-memory',
    capabilities: {
      delayedDelivery: true,
      deadLettering: false,
      perKeyOrder: true,
      competingConsumers: true,
      durable: false,
    },

    async publish(topic, messages, publishOptions) {
      if (closed) throw new StoreClosedError('transport');
      assertName(topic, 'topic');
      assertMessages(messages);
      const required = checkTransportPublishOptions(publishOptions);
      const groups = groupsOf(topic);
      if (required && groups.size === 0) throw new NoSubscriptionError(topic);
      for (const group of groups.values()) enqueue(group, messages);
    },

    async declareSubscription(topic, groupName) {
      if (closed) throw new StoreClosedError('transport');
      assertName(topic, 'topic');
      assertName(groupName, 'group');
      declare(topic, groupName);
    },

    async backlog(topic, groupName) {
      if (closed) throw new StoreClosedError('transport');
      assertName(topic, 'topic');
      assertName(groupName, 'group');
      const entries = groupsOf(topic).get(groupName)?.entries ?? [];
      const oldest = entries.reduce<number | undefined>((min, e) => {
        const at = e.message.createdAt.getTime();
        return min === undefined || at < min ? at : min;
      }, undefined);
      return { messages: entries.length, oldestAt: oldest };
    },

    async redeliver(topic, groupName, messages) {
      if (closed) throw new StoreClosedError('transport');
      assertName(topic, 'topic');
      assertName(groupName, 'group');
      assertMessages(messages);
      const group = groupsOf(topic).get(groupName);
      if (group) enqueue(group, messages);
    },

    subscribe(topic: string, groupName: string, given?: SubscribeOptions): Subscription {
      const subscribeOptions = checkSubscribeOptions(given) ?? {};
      assertName(topic, 'topic');
      assertName(groupName, 'group');
      const visibility = subscribeOptions.visibilityTimeoutMs ?? 30_000;
      const own = declare(topic, groupName);

      const take = (max: number): Delivery[] => {
        const at = now();
        const out: Delivery[] = [];
        // Per-key order across subscriptions: an entry goes out only with every earlier entry of its
        // key in the same hand-out; a key whose earliest entry is not visible waits whole.
        const blocked = new Set<string>();
        for (const entry of own.entries) {
          if (out.length >= max) break;
          const key = entry.message.key;
          if (blocked.has(key)) continue;
          if (entry.visibleAt > at) {
            blocked.add(key);
            continue;
          }
          entry.inFlight = true;
          entry.visibleAt = at + visibility;
          entry.deliveryCount += 1;
          entry.lease += 1;
          const lease = entry.lease;
          const current = () => entry.lease === lease && own.entries.includes(entry);
          out.push({
            message: entry.message,
            deliveryCount: entry.deliveryCount,
            async ack() {
              if (!current()) return;
              own.entries.splice(own.entries.indexOf(entry), 1);
              // The key's later entries may now go out.
              wake(own);
            },
            async release(delayMs: number) {
              if (!current()) return;
              entry.inFlight = false;
              entry.lease += 1;
              entry.visibleAt = now() + Math.max(0, delayMs);
              wake(own);
            },
            async extend(ms: number) {
              if (current()) entry.visibleAt = now() + ms;
            },
          });
        }
        return out;
      };

      let subscriptionClosed = false;
      return {
        receive(max: number, waitMs: number, signal: AbortSignal) {
          if (closed || subscriptionClosed) return Promise.reject(new StoreClosedError('transport'));
          const ready = take(max);
          if (ready.length > 0 || waitMs <= 0 || signal.aborted) return Promise.resolve(ready);
          return new Promise<Delivery[]>((resolve) => {
            const finish = () => {
              own.waiters.delete(wakeUp);
              clearTimeout(timer);
              clearTimeout(retimer);
              signal.removeEventListener('abort', onAbort);
            };
            const wakeUp = () => {
              const found = take(max);
              if (found.length === 0) return;
              finish();
              resolve(found);
            };
            const onAbort = () => {
              finish();
              resolve([]);
            };
            // Delayed entries become visible without a publish: look again when the next one is due.
            const due = own.entries.filter((e) => !e.inFlight).map((e) => e.visibleAt);
            const next = due.length > 0 ? Math.min(...due) - now() : Number.POSITIVE_INFINITY;
            const retimer = setTimeout(wakeUp, Math.max(1, Math.min(next, waitMs)));
            const timer = setTimeout(() => {
              finish();
              resolve(take(max));
            }, waitMs);
            own.waiters.add(wakeUp);
            signal.addEventListener('abort', onAbort, { once: true });
          });
        },
        async close() {
          subscriptionClosed = true;
        },
      };
    },

    async close() {
      closed = true;
      for (const groups of topics.values()) for (const group of groups.values()) wake(group);
    },
  };
}
