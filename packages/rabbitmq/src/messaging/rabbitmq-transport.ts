import {
  type DeadLetterStore,
  type Message,
  NoSubscriptionError,
  StoreClosedError,
  type SubscribeOptions,
  type Subscription,
  type Transport,
  TransportError,
} from '@factline/core';
import {
  assertMessages,
  checkSubscribeOptions,
  checkTransportPublishOptions,
  keptOnSuccess,
  messageToJson,
} from '@factline/core/adapter';
import type { Channel, ChannelModel } from 'amqplib';
import { assertAmqpUrl, assertTlsUrl, CLOSE_WAIT_MS, closeWithin, reconnectDelay, redactUrl } from '../connection.ts';
import { checkRabbitTransportOptions, type RabbitErrorStage, type RabbitTransportOptions } from '../options.ts';
import { checkPartitionCount } from '../partition-count.ts';
import {
  assertQueueNames,
  type Declared,
  declareDelayTier,
  declareGroup,
  declareUnreadableQueue,
  delayTierFor,
  delayTiers,
  localHoldMs,
  partitionOf,
  type TierKind,
  topologyNames,
} from '../topology.ts';
import { groupBacklog, readyMessages } from './backlog.ts';
import { createGroupReader, type GroupReader } from './group-reader.ts';
import { closeLink, type Link, openLink } from './link.ts';
import type { Outgoing } from './publish.ts';
import { DUE_HEADER } from './receive.ts';
import { redeliveryOf } from './redelivery.ts';

export interface RabbitTransport extends Transport {
  /** The exchanges and queues this transport declared (the application's, as far as it used them). */
  readonly declared: Declared;
  /** True while connected; false while it reconnects. */
  connected(): boolean;
  /**
   * The name its connections show in the broker (`rabbitmqctl list_connections name client_properties`): the
   * one that consumes and declares, and the one that publishes with ` (publish)` after it.
   */
  readonly connectionName: string;
}

/**
 * The transport on RabbitMQ: a topic exchange per application, per
 * (topic, group) `partitions` quorum queues with single active consumer, a
 * delivery limit and a dead-letter queue; publishes persistent, mandatory
 * and confirmed; delays through TTL tiers that dead-letter back to the
 * group queue. A topic's partition count is recorded at its first
 * declaration or publish and another count refused (partition-count.ts).
 * Reconnects by itself with backoff, declares its topology
 * again and resumes its subscriptions. `backlog` counts the group queues'
 * ready messages and this process's own unacknowledged ones and releases
 * away in a delay tier; the age is unknown (`ageUnknown`). Rejects at start with a
 * `TransportError` when the broker is unreachable or refuses the credentials
 * or the TLS handshake (`tls`, for an `amqps://` URL).
 *
 * @example
 * const transport = await getRabbitTransport({ url: 'amqp://guest:guest@127.0.0.1:5672', application: 'shop' });
 * await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} })]);
 */
export async function getRabbitTransport(given: RabbitTransportOptions): Promise<RabbitTransport> {
  const options = checkRabbitTransportOptions(given);
  assertAmqpUrl(options.url);
  assertTlsUrl(options.url, options.tls, 'getRabbitTransport.tls');
  const names = topologyNames(options.application);
  const connectionName =
    options.connectionName ??
    `factline ${options.application} ${process.pid} ${Math.random().toString(36).slice(2, 8)}`;
  const declared: Declared = { exchanges: new Set([names.exchange, names.deadExchange]), queues: new Set() };
  /** Group declarations and delay tiers done on the current connection (cleared on reconnect). */
  let declaredNow = new Map<string, Promise<void>>();
  const readers = new Map<string, { reader: GroupReader; users: number }>();
  /** Stops of readers whose last subscription closed: `close()` waits for them before closing the connection. */
  const stopping = new Set<Promise<void>>();
  let link: Link | undefined;
  let closed = false;
  let reconnecting: Promise<void> | undefined;
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  let nextSubscriber = 1;

  const report = (error: unknown, stage: RabbitErrorStage) => {
    try {
      options.onError?.(error, { stage });
    } catch {
      // The hook's own failure changes nothing.
    }
  };

  const open = (): Promise<Link> =>
    openLink({
      url: options.url,
      connectTimeoutMs: options.connectTimeoutMs,
      connectionName,
      tls: options.tls,
      publishTimeoutMs: options.publishTimeoutMs,
      names,
      inUse: (opened) => !closed && link === opened,
      failed: (error) => report(error, 'connection'),
      lost: () => {
        link = undefined;
        declaredNow = new Map();
        report(new TransportError(`lost the connection to RabbitMQ at ${redactUrl(options.url)}`), 'connection');
        scheduleReconnect(1);
      },
    });

  const scheduleReconnect = (attempt: number) => {
    if (closed) return;
    const delay = reconnectDelay(attempt, options.reconnectMinMs, options.reconnectMaxMs);
    reconnectTimer = setTimeout(() => {
      reconnecting = (async () => {
        try {
          const opened = await open();
          if (closed) {
            await closeLink(opened);
            return;
          }
          link = opened;
          declareTiersAhead(opened);
          for (const { reader } of readers.values()) reader.resume();
        } catch (error) {
          report(error, 'reconnect');
          scheduleReconnect(attempt + 1);
        }
      })().finally(() => {
        reconnecting = undefined;
      });
    }, delay);
  };

  /**
   * Declares every delay tier, shortest first, on a channel of its own while
   * the connection's first work goes on: a release or a delayed publish then
   * finds its tier declared (or declaring) instead of waiting three round trips.
   */
  const declareTiersAhead = (opened: Link) => {
    const table = declaredNow;
    let chain: Promise<unknown> = opened.connection.createChannel().then((channel) => {
      channel.on('error', () => undefined);
      return channel;
    });
    const channelReady = chain as Promise<Channel>;
    for (const tier of delayTiers) {
      for (const kind of ['retry', 'delay'] as const) {
        const key = `${kind} ${tier}`;
        if (table.has(key)) continue;
        const done = chain.then(async () => declareDelayTier(await channelReady, names, tier, kind, declared));
        chain = done.catch(() => undefined);
        // A failure here leaves the tier to be declared on first use.
        const tracked = done.catch((error: unknown) => {
          if (table.get(key) === tracked) table.delete(key);
          throw new TransportError(`declaring the ${kind} tier ${tier} ms failed: ${String(error)}`, { cause: error });
        });
        tracked.catch(() => undefined);
        table.set(key, tracked);
      }
    }
    void chain.then(async () => closeWithin(await channelReady)).catch(() => undefined);
  };

  link = await open();
  declareTiersAhead(link);

  const current = (): Link => {
    if (closed) throw new StoreClosedError('transport');
    if (!link) {
      throw new TransportError(`not connected to RabbitMQ at ${redactUrl(options.url)} (reconnecting)`);
    }
    return link;
  };

  /**
   * Runs a declaration once per connection (again after a reconnect), on a
   * channel of its own: a refusal closes the channel it came on, and the
   * publish channel (with the connection) must not go with it.
   */
  const once = (key: string, work: (channel: Channel) => Promise<void>): Promise<void> => {
    const { connection } = current();
    let done = declaredNow.get(key);
    if (!done) {
      const table = declaredNow;
      done = declareApart(connection, work).catch((error: unknown) => {
        table.delete(key);
        throw declarationError(key, error);
      });
      table.set(key, done);
    }
    return done;
  };

  const groupKey = (topic: string, group: string) => JSON.stringify([topic, group]);

  /** A declaration's failure: a queue that exists with other arguments is refused for good (not retryable). */
  const declarationError = (key: string, error: unknown): TransportError => {
    const text = String((error as Error)?.message ?? error);
    const argument = /inequivalent arg '([^']+)'/.exec(text)?.[1];
    if (argument === undefined) {
      return new TransportError(`declaring ${key} on RabbitMQ failed: ${String(error)}`, { cause: error });
    }
    const option = argument === 'x-delivery-limit' ? 'deliveryLimit' : undefined;
    return new TransportError(
      `declaring ${key} on RabbitMQ failed: its queue exists with another ${argument}${option ? ` (the transport's ${option})` : ''}: every process of the application '${options.application}' must declare it alike${option ? ` (the same ${option})` : ''}; to change it, stop them all, let the queue drain and delete it, then start them with the new value (${text})`,
      { retryable: false, cause: error },
    );
  };

  /** Per topic, the check of its recorded partition count: once it passed (a failed one runs again next time). */
  const counted = keptOnSuccess<void>();
  const countChecked = (topic: string): Promise<void> =>
    counted.get(topic, () =>
      checkPartitionCount(current().connection, names, options.application, topic, options.partitions, declared),
    );

  /** Per topic, the group declarations under way: a publish waits for them (a subscribe is synchronous). */
  const declaring = new Map<string, Set<Promise<void>>>();

  const declare = (topic: string, group: string, again = false): Promise<void> => {
    if (again) declaredNow.delete(`group ${groupKey(topic, group)}`);
    // The topic's partition count first: a process given another one declares nothing.
    const work = countChecked(topic).then(() =>
      once(`group ${groupKey(topic, group)}`, (channel) =>
        declareGroup(channel, names, topic, group, options, declared),
      ),
    );
    const tracked = declaring.get(topic) ?? new Set<Promise<void>>();
    declaring.set(topic, tracked);
    tracked.add(work);
    const forget = () => {
      tracked.delete(work);
      if (tracked.size === 0 && declaring.get(topic) === tracked) declaring.delete(topic);
    };
    work.then(forget, forget);
    return work;
  };

  const declareTier = (tier: number, kind: TierKind) =>
    once(`${kind} ${tier}`, (channel) => declareDelayTier(channel, names, tier, kind, declared));

  const checkNames = (topic: string, group?: string) => assertQueueNames(names, options.partitions, topic, group);

  const encode = (topic: string, messages: readonly Message[]): (Outgoing & { tier?: number })[] => {
    const at = Date.now();
    /** Per key, when its latest delayed message is due: the key's later messages wait for it (same publish). */
    const heldKeys = new Map<string, number>();
    return messages.map((message) => {
      const partition = partitionOf(message.key, options.partitions);
      const due = Math.max(message.deliverAt?.getTime() ?? 0, heldKeys.get(message.key) ?? 0);
      const content = Buffer.from(messageToJson(message));
      const tier = due - at >= localHoldMs ? delayTierFor(due - at) : undefined;
      if (due > at) heldKeys.set(message.key, due);
      if (tier === undefined) {
        return {
          exchange: names.exchange,
          routingKey: names.routingKey(topic, partition),
          content,
          headers: due > at ? { [DUE_HEADER]: due } : {},
          messageId: message.id,
        };
      }
      // Delayed: through a tier that dead-letters into the topic exchange, with this routing key (every group).
      return {
        exchange: names.tier(tier, 'delay'),
        routingKey: names.routingKey(topic, partition),
        content,
        headers: { [DUE_HEADER]: due },
        messageId: message.id,
        tier,
      };
    });
  };

  return {
    declared,
    connectionName,
    connected: () => link !== undefined,

    system: 'rabbitmq',
    capabilities: {
      delayedDelivery: true,
      deadLettering: true,
      perKeyOrder: true,
      competingConsumers: true,
      durable: true,
    },

    async publish(topic, messages, publishOptions) {
      if (closed) throw new StoreClosedError('transport');
      checkNames(topic);
      assertMessages(messages);
      const required = checkTransportPublishOptions(publishOptions);
      if (messages.length === 0) return;
      const pending = declaring.get(topic);
      if (pending) await Promise.allSettled(pending);
      await countChecked(topic);
      const outgoing = encode(topic, messages);
      for (const tier of new Set(outgoing.map((item) => item.tier))) if (tier) await declareTier(tier, 'delay');
      const outcomes = await current().publisher.publish(outgoing);
      const returned = outcomes.filter((o) => o === 'returned').length;
      if (returned > 0 && required) throw new NoSubscriptionError(topic);
    },

    async declareSubscription(topic, group) {
      if (closed) throw new StoreClosedError('transport');
      checkNames(topic, group);
      await declare(topic, group);
    },

    async redeliver(topic, group, messages) {
      if (closed) throw new StoreClosedError('transport');
      checkNames(topic, group);
      assertMessages(messages);
      await declare(topic, group);
      const outcomes = await current().publisher.publish(
        redeliveryOf(names, topic, group, options.partitions, messages),
      );
      const returned = outcomes.filter((outcome) => outcome === 'returned').length;
      if (returned > 0) {
        // Its queue was deleted since this connection declared it: the next call declares it again, so a retry
        // gets through (the confirmed ones of this call then arrive twice: at least once).
        declaredNow.delete(`group ${groupKey(topic, group)}`);
        throw new TransportError(
          `${returned} of ${messages.length} messages redelivered to group '${group}' of topic '${topic}' came back unroutable: its queues were deleted since this connection declared them (declared again at the next call)`,
        );
      }
    },

    subscribe(topic: string, group: string, given?: SubscribeOptions): Subscription {
      const subscribeOptions = checkSubscribeOptions(given) ?? {};
      checkNames(topic, group);
      if (closed) throw new StoreClosedError('transport');
      const visibility = subscribeOptions.visibilityTimeoutMs ?? 30_000;
      const key = groupKey(topic, group);
      let shared = readers.get(key);
      if (!shared) {
        const reader = createGroupReader({
          names,
          topic,
          group,
          partitions: options.partitions,
          prefetch: options.prefetch,
          deliveryLimit: options.deliveryLimit,
          deadLetters: options.deadLetters,
          connection: () => link?.connection,
          declareGroup: (again) => declare(topic, group, again),
          declareTier,
          declareUnreadable: () =>
            once(`unreadable ${groupKey(topic, group)}`, (channel) =>
              declareUnreadableQueue(channel, names, topic, group, declared),
            ),
          publish: (items) => current().publisher.publish(items),
          report,
        });
        shared = { reader, users: 0 };
        readers.set(key, shared);
        void reader.start();
      }
      shared.users += 1;
      const own = shared;
      let subscriptionClosed = false;
      const subscriber = nextSubscriber++;
      return {
        receive(max, waitMs, signal) {
          if (closed || subscriptionClosed) return Promise.reject(new StoreClosedError('transport'));
          return own.reader.buffer.receive(subscriber, max, waitMs, signal, visibility);
        },
        async close() {
          if (subscriptionClosed) return;
          subscriptionClosed = true;
          own.users -= 1;
          if (own.users === 0 && readers.get(key) === own) {
            readers.delete(key);
            const stop = own.reader.stop().finally(() => stopping.delete(stop));
            stopping.add(stop);
            await stop;
          }
        },
      };
    },

    async backlog(topic, group) {
      checkNames(topic, group);
      const { connection } = current();
      const queues = Array.from({ length: options.partitions }, (_, p) => names.groupQueue(topic, group, p));
      let messages: number;
      try {
        messages = await groupBacklog(
          () => readyMessages(connection, queues),
          readers.get(groupKey(topic, group))?.reader,
        );
      } catch (error) {
        throw new TransportError(`reading the backlog of ${topic}/${group} failed: ${String(error)}`, { cause: error });
      }
      // AMQP cannot look at a queue's oldest message without taking it: the age is unknown.
      return { messages, oldestAt: undefined, ...(messages > 0 ? { ageUnknown: true } : {}) };
    },

    async defaultDeadLetterStore(): Promise<DeadLetterStore> {
      if (!options.deadLetters) {
        throw new TransportError(
          'the RabbitMQ transport was given no deadLetters store: give one to it or to the consumer',
          { retryable: false },
        );
      }
      return options.deadLetters;
    },

    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(reconnectTimer);
      await reconnecting?.catch(() => undefined);
      // Every stop is bounded; a subscription's still under way acks on this connection too.
      await Promise.all([...[...readers.values()].map(({ reader }) => reader.stop()), ...stopping]);
      readers.clear();
      const last = link;
      link = undefined;
      if (last && !(await closeLink(last))) {
        report(
          new TransportError(
            `RabbitMQ at ${redactUrl(options.url)} did not confirm closing the connection within ${CLOSE_WAIT_MS} ms: it was dropped`,
          ),
          'connection',
        );
      }
    },
  };
}

/**
 * Runs `work` on a channel opened for it and closed after, whatever it did.
 * The close is not waited for: a declaration is kept for the connection, and
 * a close-ok that never comes (the connection lost meanwhile) must not hold it.
 */
async function declareApart(connection: ChannelModel, work: (channel: Channel) => Promise<void>): Promise<void> {
  const channel = await connection.createChannel();
  // A refusal arrives as the channel's close too; `work`'s rejection says it.
  channel.on('error', () => undefined);
  try {
    await work(channel);
  } finally {
    void closeWithin(channel);
  }
}
