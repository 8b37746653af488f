import { NoSubscriptionError, StoreClosedError } from '../errors/index.ts';
import { checkInMemoryTransportOptions, checkSubscribeOptions } from '../options/core-options.ts';
import { assertName } from '../store/validation.ts';
import { type Message, messageFromJson, messageToJson } from './message.ts';
import { assertMessages } from './message-validation.ts';
import { checkTransportPublishOptions } from './publish-options.ts';
import { SeqHeap } from './seq-heap.ts';
import type { Delivery, SubscribeOptions, Subscription, Transport } from './transport.ts';

interface Entry {
  message: Message;
  /**
   * The message as a durable transport stores it (`messageToJson`): each hand-out is a copy parsed from it, as
   * from a database or a broker, so a handler sees what it would see in production (a `Date` in the data as
   * its ISO string, no `undefined` property) and a change it makes, or the publisher's after publishing,
   * reaches no other delivery.
   */
  json: string;
  /** Publish order within the group. */
  seq: number;
  /** Not handed out before this time (delayed delivery, released with a delay, or in flight). */
  visibleAt: number;
  inFlight: boolean;
  deliveryCount: number;
  /** Bumped on every hand-out, so a settle from an expired delivery is ignored. */
  lease: number;
  /** Acknowledged: gone from the group. */
  removed: boolean;
  lane: KeyQueue;
}

/**
 * Where a key's queue is: `ready` (in the group's heap, its head visible when
 * placed), `pending` (its head in flight or not yet due), `gone` (emptied),
 * `none` while a hand-out or a move is placing it.
 */
type KeyState = 'ready' | 'pending' | 'gone' | 'none';

/** One key's entries in publish order; acknowledged ones before `head` are dropped in chunks. */
interface KeyQueue {
  key: string;
  entries: Entry[];
  /** Index of the key's earliest entry not acknowledged. */
  head: number;
  state: KeyState;
  /** The head's `seq` when the queue was put in the ready heap: older heap nodes are stale. */
  readySeq: number;
}

/** A ready key in the heap, by the `seq` of its head when it became ready. */
interface ReadyNode {
  seq: number;
  queue: KeyQueue;
}

/** A key's next entry to hand out in a `take`, by its `seq`. */
interface Cursor {
  seq: number;
  queue: KeyQueue;
  index: number;
}

/**
 * The entries of one group, kept per key so that a hand-out and a settle cost
 * about the same however many entries wait: keys whose earliest entry is
 * visible wait in a heap by that entry's publish order; the others (in flight,
 * delayed) in `pending`, looked at again once `pendingDue` passed.
 */
interface Group {
  keys: Map<string, KeyQueue>;
  ready: SeqHeap<ReadyNode>;
  pending: Set<KeyQueue>;
  /** No pending key's head becomes visible before this time (a lower bound). */
  pendingDue: number;
  /** Entries not acknowledged. */
  count: number;
  nextSeq: number;
  waiters: Set<() => void>;
}

/** Whether `entry` may be handed out at `at` (a NaN time counts as due). */
const visible = (entry: Entry, at: number) => !(entry.visibleAt > at);

/** Puts a key whose head changed (or may have) where it belongs; drops it once empty. */
function place(group: Group, queue: KeyQueue, at: number): void {
  const entries = queue.entries;
  while (queue.head < entries.length && (entries[queue.head] as Entry).removed) queue.head += 1;
  if (queue.head >= entries.length) {
    if (queue.state === 'pending') group.pending.delete(queue);
    queue.state = 'gone';
    if (group.keys.get(queue.key) === queue) group.keys.delete(queue.key);
    return;
  }
  if (queue.head >= 64 && queue.head * 2 >= entries.length) {
    entries.splice(0, queue.head);
    queue.head = 0;
  }
  const head = entries[queue.head] as Entry;
  if (visible(head, at)) {
    if (queue.state === 'pending') group.pending.delete(queue);
    if (queue.state !== 'ready' || queue.readySeq !== head.seq) {
      queue.state = 'ready';
      queue.readySeq = head.seq;
      group.ready.push({ seq: head.seq, queue });
    }
    return;
  }
  if (queue.state !== 'pending') {
    queue.state = 'pending';
    group.pending.add(queue);
  }
  if (!(head.visibleAt >= group.pendingDue)) group.pendingDue = head.visibleAt;
}

/** Moves the pending keys whose head is due by `at` to the ready heap, once their earliest due time passed. */
function promoteDue(group: Group, at: number): void {
  if (at < group.pendingDue) return;
  let next = Number.POSITIVE_INFINITY;
  for (const queue of group.pending) {
    const head = queue.entries[queue.head] as Entry;
    if (visible(head, at)) place(group, queue, at);
    else if (head.visibleAt < next) next = head.visibleAt;
  }
  group.pendingDue = next;
}

/** The ready key with the earliest head, dropping stale heap nodes and heads no longer visible. */
function nextReady(group: Group, at: number): ReadyNode | undefined {
  for (;;) {
    const node = group.ready.peek();
    if (node === undefined) return undefined;
    const queue = node.queue;
    if (queue.state !== 'ready' || queue.readySeq !== node.seq) {
      group.ready.pop();
      continue;
    }
    if (!visible(queue.entries[queue.head] as Entry, at)) {
      group.ready.pop();
      queue.state = 'none';
      place(group, queue, at);
      continue;
    }
    return node;
  }
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
      let queue = group.keys.get(message.key);
      if (!queue) {
        queue = { key: message.key, entries: [], head: 0, state: 'none', readySeq: -1 };
        group.keys.set(message.key, queue);
      }
      const visibleAt = message.deliverAt?.getTime() ?? 0;
      queue.entries.push({
        message,
        json: messageToJson(message),
        seq: group.nextSeq++,
        visibleAt,
        inFlight: false,
        deliveryCount: 0,
        lease: 0,
        removed: false,
        lane: queue,
      });
      group.count += 1;
      // A key's first entry decides where the key waits; later ones wait behind it.
      if (queue.entries.length - queue.head === 1) place(group, queue, visibleAt > 0 ? now() : 0);
    }
    wake(group);
  };

  const declare = (topic: string, groupName: string): Group => {
    const groups = groupsOf(topic);
    let group = groups.get(groupName);
    if (!group) {
      group = {
        keys: new Map(),
        ready: new SeqHeap(),
        pending: new Set(),
        pendingDue: Number.POSITIVE_INFINITY,
        count: 0,
        nextSeq: 0,
        waiters: new Set(),
      };
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
      delayedReleaseHoldsKey: true,
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
      const group = groupsOf(topic).get(groupName);
      let oldest: number | undefined;
      for (const queue of group?.keys.values() ?? []) {
        for (let i = queue.head; i < queue.entries.length; i++) {
          const entry = queue.entries[i] as Entry;
          if (entry.removed) continue;
          const at = entry.message.createdAt.getTime();
          if (oldest === undefined || at < oldest) oldest = at;
        }
      }
      return { messages: group?.count ?? 0, oldestAt: oldest };
    },

    async redeliver(topic, groupName, messages) {
      if (closed) throw new StoreClosedError('transport');
      assertName(topic, 'topic');
      assertName(groupName, 'group');
      assertMessages(messages);
      // Declares the group, as a subscription does: a redrive before its first consumer ran is kept for it.
      enqueue(declare(topic, groupName), messages);
    },

    subscribe(topic: string, groupName: string, given?: SubscribeOptions): Subscription {
      const subscribeOptions = checkSubscribeOptions(given) ?? {};
      assertName(topic, 'topic');
      assertName(groupName, 'group');
      const visibility = subscribeOptions.visibilityTimeoutMs ?? 30_000;
      const own = declare(topic, groupName);

      /** Acknowledges `entry`: a key whose head it was moves on to its next entry. */
      const remove = (entry: Entry) => {
        entry.removed = true;
        own.count -= 1;
        const queue = entry.lane;
        if (queue.entries[queue.head] === entry) place(own, queue, now());
      };

      const handOut = (entry: Entry, at: number): Delivery => {
        entry.inFlight = true;
        entry.visibleAt = at + visibility;
        entry.deliveryCount += 1;
        entry.lease += 1;
        const lease = entry.lease;
        const current = () => entry.lease === lease && !entry.removed;
        // An earlier due time of a pending head is looked at on the next take.
        const reconsider = () => {
          if (!(entry.visibleAt >= own.pendingDue)) own.pendingDue = entry.visibleAt;
        };
        return {
          message: messageFromJson(entry.json),
          deliveryCount: entry.deliveryCount,
          async ack() {
            if (!current()) return;
            remove(entry);
            // The key's later entries may now go out.
            wake(own);
          },
          async release(delayMs: number) {
            if (!current()) return;
            entry.inFlight = false;
            entry.lease += 1;
            entry.visibleAt = now() + Math.max(0, delayMs);
            reconsider();
            wake(own);
          },
          async extend(ms: number) {
            if (!current()) return;
            entry.visibleAt = now() + ms;
            reconsider();
          },
        };
      };

      const take = (max: number): Delivery[] => {
        const at = now();
        promoteDue(own, at);
        const out: Delivery[] = [];
        // Per-key order across subscriptions: an entry goes out only with every earlier entry of its
        // key in the same hand-out; a key whose earliest entry is not visible waits whole. Entries go
        // out in publish order: the ready keys' visible runs merged by `seq`.
        const cursors = new SeqHeap<Cursor>();
        const taken: KeyQueue[] = [];
        for (;;) {
          if (out.length >= max) break;
          const node = nextReady(own, at);
          const cursor = cursors.peek();
          if (node === undefined && cursor === undefined) break;
          if (node !== undefined && (cursor === undefined || node.seq < cursor.seq)) {
            own.ready.pop();
            node.queue.state = 'none';
            taken.push(node.queue);
            cursors.push({ seq: node.seq, queue: node.queue, index: node.queue.head });
            continue;
          }
          const { queue, index } = cursors.pop() as Cursor;
          out.push(handOut(queue.entries[index] as Entry, at));
          let i = index + 1;
          while (i < queue.entries.length && (queue.entries[i] as Entry).removed) i += 1;
          const next = queue.entries[i];
          if (next !== undefined && visible(next, at)) cursors.push({ seq: next.seq, queue, index: i });
        }
        // Each key handed out has its head in flight now: it waits in `pending`.
        for (const queue of taken) place(own, queue, at);
        return out;
      };

      /** When the earliest entry not in flight becomes visible (a delayed one), in ms from now. */
      const nextDue = () => {
        let due = Number.POSITIVE_INFINITY;
        for (const queue of own.pending) {
          const head = queue.entries[queue.head] as Entry;
          if (!head.inFlight && head.visibleAt < due) due = head.visibleAt;
        }
        return due - now();
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
            const next = nextDue();
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
