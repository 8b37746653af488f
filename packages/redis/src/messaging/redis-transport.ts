import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  isFactlineError,
  NoSubscriptionError,
  StoreClosedError,
  type Subscription,
  type Transport,
  TransportError,
} from '@factline/core';
import { assertName, createQueueTransport, settledWithin } from '@factline/core/adapter';
import {
  assertRedisUrl,
  assertTlsUrl,
  CLOSE_WAIT_MS,
  closeClient,
  commandError,
  destroyClient,
  openClient,
  type RedisClient,
  SILENCE_MS,
  unansweredAtClose,
} from '../connection.ts';
import { type RedisKeys, redisKeys } from '../keys.ts';
import { checkRedisTransportOptions, type RedisErrorStage, type RedisTransportOptions } from '../options.ts';
import { runScript } from '../scripts.ts';
import { serverIdentity } from '../server-checks.ts';
import { readBacklog } from './backlog.ts';
import { startDelayMover } from './delay-mover.ts';
import { createGroupReader, type GroupReader } from './group-reader.ts';
import { delayedMember, writeMessages } from './publish.ts';
import { getRedisDeadLetterStore } from './redis-dead-letters.ts';
import { removeGroup } from './remove-group.ts';

export interface RedisTransport extends Transport {
  /** The keys this transport writes, by application. */
  readonly keys: RedisKeys;
  /** This process's consumer name prefix in the streams' groups (unique per transport). */
  readonly consumerName: string;
  /** The partitions this transport reads for `group` on `topic` now (under its leases). */
  heldPartitions(topic: string, group: string): number[];
  /**
   * Removes a group no process of the application reads any more: its
   * consumer group on every partition stream, its registration, and the
   * delayed messages (retries waiting) for it alone; when it was the topic's
   * last group, the topic's streams and delayed messages too. A group left
   * declared holds every stream of its topic at its unread entries, since
   * trimming keeps what any group has not read. Refused with a `TransportError`
   * while a reader of the group is registered or holds a partition. Resolves
   * false when the group was not declared.
   */
  removeGroup(topic: string, group: string): Promise<boolean>;
}

/** How long a topic seen with groups is taken to have some before it is looked at again (a group may be removed). */
const GROUPS_RECHECK_MS = 5000;

/**
 * The transport on Redis Streams: per topic `partitions` streams, a consumer
 * group per Factline group on each, created idempotently; each partition read
 * by one process of a group at a time under a lease, so a key's messages are
 * handled in publish order across processes; `release(delay)` and `deliverAt`
 * through a sorted set of due messages moved back by a script. Rejects at
 * start with a `TransportError` when the server is unreachable or refuses the
 * credentials; reconnects by itself afterwards.
 *
 * @example
 * const transport = await getRedisTransport({ url: 'redis://127.0.0.1:6379', application: 'shop' });
 * await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} })]);
 */
export async function getRedisTransport(given: RedisTransportOptions): Promise<RedisTransport> {
  const options = checkRedisTransportOptions(given);
  assertRedisUrl(options.url);
  assertTlsUrl(options.url, options.tls, 'getRedisTransport.tls');
  const keys = redisKeys(options.application);
  const consumerName = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const report = (error: unknown, stage: RedisErrorStage) => {
    try {
      options.onError?.(error, { stage });
    } catch {
      // The hook's own failure changes nothing.
    }
  };
  const settings = {
    connectTimeoutMs: options.connectTimeoutMs,
    tls: options.tls,
    reconnectMinMs: options.reconnectMinMs,
    reconnectMaxMs: options.reconnectMaxMs,
    name: `factline-${options.application}-${process.pid}`,
    onError: (error: unknown) => report(error, 'connection'),
  };
  const client: RedisClient = await openClient(options.url, settings);
  const server = await serverIdentity(client, options.url, options.connectTimeoutMs, {
    allowEviction: options.allowEviction ?? false,
  }).catch(async (error: unknown) => {
    await closeClient(client);
    throw error;
  });
  // A dropped connection stops the readers' work at once (their leases are unknown until renewed).
  client.on('reconnecting', () => {
    for (const { reader } of readers.values()) reader.interrupt();
  });
  const blockingClients = new Set<RedisClient>();
  const readers = new Map<string, { reader: GroupReader; users: number }>();
  /** Readers whose subscription closed, still stopping. */
  const readersStopping = new Set<Promise<void>>();
  const declared = new Map<string, Promise<void>>();
  /** Topics seen with groups, and when they were last seen with some. */
  const withGroups = new Map<string, number>();
  let closed = false;
  let nextReader = 1;
  let nextSubscriber = 1;
  const groupKey = (topic: string, group: string) => JSON.stringify([topic, group]);
  const streamsOf = (topic: string) => Array.from({ length: options.partitions }, (_, p) => keys.stream(topic, p));

  /** Per topic, the group declarations under way: a publish waits for them (a subscribe is synchronous). */
  const declaring = new Map<string, Set<Promise<void>>>();

  const declare = (topic: string, group: string, again = false): Promise<void> => {
    const key = groupKey(topic, group);
    let done = again ? undefined : declared.get(key);
    if (!done) {
      const tracked = declaring.get(topic) ?? new Set<Promise<void>>();
      declaring.set(topic, tracked);
      // Declared again because the server lost the group (restarted without persistence): what the
      // streams hold now came after the loss, and is the group's.
      const attempt = runScript(
        client,
        'declare',
        [keys.groups(topic), keys.partitions, ...streamsOf(topic)],
        [group, again ? '0' : '$', topic, options.partitions],
      ).then(
        (outcome) => {
          const recorded = /^partitions (\d+)$/.exec(String(outcome))?.[1];
          if (recorded !== undefined) throw otherCount(topic, Number(recorded));
          withGroups.set(topic, Date.now());
        },
        (error: unknown) => {
          throw new TransportError(`declaring ${topic}/${group} on Redis failed: ${String(error)}`, { cause: error });
        },
      );
      // A failed declaration is tried again by the next call.
      attempt.catch(() => {
        if (declared.get(key) === attempt) declared.delete(key);
      });
      done = attempt;
      declared.set(key, done);
      const work = done;
      tracked.add(work);
      const forget = () => {
        tracked.delete(work);
        if (tracked.size === 0 && declaring.get(topic) === tracked) declaring.delete(topic);
      };
      work.then(forget, forget);
    }
    return done;
  };

  /** The refusal of a topic whose recorded partition count is not this transport's. */
  const otherCount = (topic: string, recorded: number) =>
    new TransportError(
      `topic '${topic}' has ${recorded} partitions in the Redis application '${options.application}' (${keys.partitions}), and this transport was given partitions: ${options.partitions}: every process of an application must use the same count, or keys land in other partitions and lose their order (to change it: stop every process, let the groups drain, HDEL ${keys.partitions} ${topic}, start them with the new count)`,
      { retryable: false },
    );

  /** Looks again, in the background, whether a topic seen with groups still has some (the last may be removed). */
  const recheckGroups = (topic: string) => {
    withGroups.set(topic, Date.now());
    client.sendCommand(['SCARD', keys.groups(topic)]).then(
      (count) => {
        if (Number(count) === 0) withGroups.delete(topic);
      },
      (error: unknown) => report(commandError(error, `looking up the groups of ${topic} on Redis`), 'connection'),
    );
  };

  const hasGroups = async (topic: string) => {
    const seen = withGroups.get(topic);
    if (seen !== undefined) {
      // A publish does not wait for the look: a removed last group stops the writes a few seconds later.
      if (Date.now() - seen > GROUPS_RECHECK_MS) recheckGroups(topic);
      return true;
    }
    const [count, recorded] = await Promise.all([
      client.sendCommand(['SCARD', keys.groups(topic)]),
      client.sendCommand(['HGET', keys.partitions, topic]),
    ]);
    if (recorded != null && Number(recorded) !== options.partitions) throw otherCount(topic, Number(recorded));
    if (Number(count) > 0) withGroups.set(topic, Date.now());
    return Number(count) > 0;
  };

  const mover = startDelayMover(client, keys, (error) => report(error, 'delay'));

  const readerFor = (topic: string, group: string) => {
    const key = groupKey(topic, group);
    let shared = readers.get(key);
    if (!shared) {
      const consumer = `${consumerName}-${nextReader++}`;
      const reader = createGroupReader({
        keys,
        server,
        topic,
        group,
        partitions: options.partitions,
        prefetch: options.prefetch,
        leaseMs: options.leaseMs,
        blockMs: options.blockMs,
        trimIntervalMs: options.trimIntervalMs,
        consumerIdleMs: options.consumerIdleMs,
        reconnectMinMs: options.reconnectMinMs,
        reconnectMaxMs: options.reconnectMaxMs,
        consumer,
        client,
        openBlocking: async () => {
          // Its reads block up to blockMs with nothing coming back: only longer is silence.
          const own = await openClient(options.url, {
            ...settings,
            name: `${settings.name}-read`,
            silentMs: SILENCE_MS + options.blockMs,
          });
          blockingClients.add(own);
          own.once('end', () => blockingClients.delete(own));
          return own;
        },
        declare: (again) => declare(topic, group, again),
        delay: async (entry, dueAt) => {
          const stream = keys.stream(topic, entry.partition);
          let outcome: number;
          try {
            outcome = Number(
              await runScript(
                client,
                'release',
                [stream, keys.delayed, keys.lease(topic, group, entry.partition)],
                // The delay from now: the script times it by Redis's clock, which every process's mover reads.
                [
                  group,
                  entry.id,
                  Math.max(0, Math.ceil(dueAt - Date.now())),
                  delayedMember(stream, entry.json, entry.count, group),
                  consumer,
                ],
              ),
            );
          } catch (error) {
            report(error, 'delay');
            return 'failed';
          }
          // -1: another reader holds the lease; -2: none does (it ran out).
          if (outcome < 0) return outcome === -2 ? 'ran-out' : 'fenced';
          if (outcome === 0) {
            report(
              new TransportError(
                `entry ${entry.id} of ${stream} was no longer pending for group '${group}' when released: nothing was scheduled`,
              ),
              'delay',
            );
            return 'gone';
          }
          mover.wake(dueAt);
          return 'moved';
        },
        report,
      });
      shared = { reader, users: 0 };
      readers.set(key, shared);
    }
    shared.users += 1;
    return shared;
  };

  const transport = createQueueTransport(
    {
      isClosed: () => closed,
      async publish(topic, messages, required) {
        const pending = declaring.get(topic);
        if (pending) await Promise.allSettled(pending);
        try {
          if (!(await hasGroups(topic))) {
            if (required) throw new NoSubscriptionError(topic);
            return;
          }
          await writeMessages(client, keys, options.partitions, topic, messages);
        } catch (error) {
          throw commandError(error, `publishing to ${topic} on Redis`);
        }
        if (messages.some((m) => m.deliverAt))
          mover.wake(Math.min(...messages.map((m) => m.deliverAt?.getTime() ?? Number.POSITIVE_INFINITY)));
      },
      async redeliver(topic, group, messages) {
        await declare(topic, group);
        await writeMessages(client, keys, options.partitions, topic, messages, group).catch((error: unknown) => {
          throw commandError(error, `redelivering to ${topic}/${group} on Redis`);
        });
      },
      declare: (topic, group) => declare(topic, group),
      subscribe(topic, group, visibilityMs): Subscription {
        const shared = readerFor(topic, group);
        const { reader } = shared;
        const subscriber = nextSubscriber++;
        const channel = groupKey(topic, group);
        // Declared now, so a publish right after `subscribe` reaches the group.
        let ready = declare(topic, group).then(() => reader.start());
        ready.catch(() => undefined);
        let subscriptionClosed = false;
        return {
          async receive(max, waitMs, signal) {
            if (closed || subscriptionClosed) throw new StoreClosedError('transport');
            const limit = Math.floor(Number(max));
            if (!(limit > 0) || signal?.aborted) return [];
            const deadline = Date.now() + Math.max(0, Number(waitMs) || 0);
            try {
              // A failed declaration (the server away) is tried again by the next receive.
              ready = ready.catch(() => declare(topic, group).then(() => reader.start()));
              await ready;
            } catch (error) {
              // Reported after a short pause, so that a caller simply receiving again does not spin.
              if (isFactlineError(error) && error.retryable && !closed) {
                const pause = Math.min(Math.max(0, deadline - Date.now()), 100);
                await sleep(pause, undefined, { signal }).catch(() => undefined);
              }
              throw error;
            }
            return reader.buffer.receive(subscriber, limit, deadline - Date.now(), signal, visibilityMs);
          },
          async close() {
            if (subscriptionClosed) return;
            subscriptionClosed = true;
            shared.users -= 1;
            if (shared.users === 0 && readers.get(channel) === shared) {
              readers.delete(channel);
              const stop = reader.stop();
              // The transport's close waits for it too (it hands back partitions on the connection close ends).
              readersStopping.add(stop);
              await stop.finally(() => readersStopping.delete(stop));
            }
          },
        };
      },
      backlog: (topic, group) => readBacklog(client, keys, options.partitions, topic, group),
      deadLetterStore: () => getRedisDeadLetterStore({ client, application: options.application }),
      async close() {
        closed = true;
        // A connection that is down has nothing to finish: what waits in it (a lease tick, a mover run) is given
        // up at once, not at its command deadline; the readers' leases are lost already.
        if (!client.isReady) destroyClient(client);
        const stopping = (async () => {
          await Promise.all([...[...readers.values()].map(({ reader }) => reader.stop()), ...readersStopping]);
          readers.clear();
          await mover.stop();
        })();
        // The readers wait up to 5 s for deliveries out to be settled, then hand back their partitions. Past that
        // and CLOSE_WAIT_MS, Redis stopped answering without closing the connection: it is dropped, which fails
        // what waits on it (partitions not handed back are free when their leases end).
        const inTime = await settledWithin(stopping, 5000 + CLOSE_WAIT_MS);
        if (!inTime) destroyClient(client);
        await stopping;
        for (const own of blockingClients) destroyClient(own);
        if (!(await closeClient(client)) || !inTime) report(unansweredAtClose(options.url, 'transport'), 'connection');
      },
    },
    {
      system: 'redis',
      keys,
      consumerName,
      heldPartitions: (topic: string, group: string) => readers.get(groupKey(topic, group))?.reader.held() ?? [],
      async removeGroup(topic: string, group: string) {
        if (closed) throw new StoreClosedError('transport');
        assertName(topic, 'topic');
        assertName(group, 'group');
        if (readers.has(groupKey(topic, group))) {
          throw new TransportError(
            `group '${group}' of topic '${topic}' is read by this transport: close its subscriptions (stop its consumers) first`,
            { retryable: false },
          );
        }
        const removed = await removeGroup(client, keys, options.partitions, topic, group);
        declared.delete(groupKey(topic, group));
        withGroups.delete(topic);
        return removed;
      },
    },
  );
  return transport;
}
