import {
  type DeadLetterStore,
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
  settledWithin,
} from '@factline/core/adapter';
import { type JetStreamManager, jetstream } from '@nats-io/jetstream';
import { openConnection, openManager, redactUrl } from '../connection.ts';
import { checkNatsTransportOptions, type NatsErrorStage, type NatsTransportOptions } from '../options.ts';
import { assertTopicAndGroup, ensureConsumer, ensureStream, isStreamMissing, topologyNames } from '../topology.ts';
import { readBacklog } from './backlog.ts';
import { createClaimBucket } from './claim-bucket.ts';
import { encodeMessages } from './encode.ts';
import { createGroupReader, type GroupReader } from './group-reader.ts';
import { createPartitionClaims, type PartitionClaims } from './partition-claims.ts';
import { createPartitionCountCheck } from './partition-count.ts';
import { createPublisher } from './publish.ts';
import { encodeRedelivery } from './redelivery.ts';
import { createStreamRestorer, foundNoStream } from './restore.ts';
import { createStreamWatch, type StreamWatch } from './stream-watch.ts';
import { createSubscriptionsSeen } from './subscriptions-seen.ts';

export interface NatsTransport extends Transport {
  /** The JetStream stream holding the application's messages. */
  readonly stream: string;
  /** True while connected; false while the client reconnects. */
  connected(): boolean;
  /** The partitions of `topic`/`group` this process pulls now (tests and monitoring). */
  heldPartitions(topic: string, group: string): number[];
}

/**
 * The transport on NATS JetStream: one stream per application (file
 * storage, interest retention, a duplicate window), per (topic, group)
 * `partitions` durable pull consumers (explicit ack, finite `max_deliver`,
 * `ack_wait`); publishes carry `Nats-Msg-Id` = topic + message id and resolve on
 * their PubAcks, pipelined; `release(delay)` and `deliverAt` are naks with a
 * delay. Reconnects by itself; a pull lost with the connection is replaced
 * and its partition gated until nothing of it is pending elsewhere.
 * The stream deleted at the server is made again (where missing, with its
 * configuration) by a publish no stream answers, a reader or a declaration.
 * `backlog` sums the group's consumers' unread and unacknowledged counts,
 * with the oldest waiting message's `createdAt`. Rejects
 * at start with a `TransportError` when the server is unreachable, refuses
 * the credentials or the TLS handshake, or has JetStream disabled.
 *
 * @example
 * const transport = await getNatsTransport({ url: 'nats://127.0.0.1:4222', application: 'shop' });
 * await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} })]);
 */
export async function getNatsTransport(given: NatsTransportOptions): Promise<NatsTransport> {
  const options = checkNatsTransportOptions(given);
  const names = topologyNames(options.application);
  const report = (error: unknown, stage: NatsErrorStage) => {
    try {
      options.onError?.(error, { stage });
    } catch {
      // The hook's own failure changes nothing.
    }
  };
  const connectionName =
    options.connectionName ??
    `factline ${options.application} ${process.pid} ${Math.random().toString(36).slice(2, 8)}`;
  const nc = await openConnection(options.url, {
    timeoutMs: options.connectTimeoutMs,
    reconnectWaitMs: options.reconnectWaitMs,
    name: connectionName,
    tls: options.tls,
  });
  const readers = new Map<string, { reader: GroupReader; claims: PartitionClaims; users: number }>();
  let jsm: JetStreamManager;
  let watch: StreamWatch;
  try {
    jsm = await openManager(nc, options.url);
    const info = await ensureStream(jsm, names, options.duplicateWindowMs);
    watch = createStreamWatch({
      nc,
      jsm,
      names,
      info,
      gone() {
        for (const { reader } of readers.values()) reader.streamGone();
      },
      report: (error) => report(error, 'topology'),
    });
    await watch.start();
  } catch (error) {
    await nc.close().catch(() => undefined);
    if (error instanceof TransportError) throw error;
    throw new TransportError(`creating the stream '${names.stream}' failed: ${String(error)}`, { cause: error });
  }
  const js = jetstream(nc);
  let closed = false;
  let connected = true;
  const claimBucket = createClaimBucket({
    js,
    jsm,
    names,
    ttlMs: options.claimTtlMs,
    report: (error) => report(error, 'topology'),
  });
  const checkPartitionCount = createPartitionCountCheck(
    { js, jsm, report: (error) => report(error, 'topology'), connected: () => connected },
    names,
    options.application,
    options.partitions,
  );
  /** Consumer creations done (or under way) by this transport; a failure is forgotten, to be tried again. */
  const declared = new Map<string, Promise<void>>();
  /** Per topic, the group declarations under way: a publish waits for them (a subscribe is synchronous). */
  const declaring = new Map<string, Set<Promise<void>>>();
  let nextSubscriber = 1;

  // Connection events: told to onError; after a reconnect every partition is gated again.
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        connected = false;
        watch.disconnected();
        report(new TransportError(`lost the connection to NATS at ${redactUrl(options.url)}`), 'connection');
      } else if (status.type === 'reconnect') {
        connected = true;
        void watch.reconnected();
        for (const { reader } of readers.values()) reader.regate();
      }
    }
  })().catch((error: unknown) => report(error, 'connection'));

  const groupKey = (topic: string, group: string) => JSON.stringify([topic, group]);

  const consumerSettings = { maxDeliver: options.maxDeliver, ackWaitMs: options.ackWaitMs };

  const addConsumer = (topic: string, group: string, partition: number): Promise<void> =>
    ensureConsumer(jsm, names, topic, group, partition, consumerSettings).catch((error: unknown) => {
      throw new TransportError(
        `creating the consumer '${names.consumer(topic, group, partition)}' failed: ${String(error)}`,
        { cause: error },
      );
    });

  /** The stream, made again where it was deleted at the server, with every consumer this transport declared. */
  const restore = createStreamRestorer({
    jsm,
    names,
    duplicateWindowMs: options.duplicateWindowMs,
    // Told first that the stream was missing: every reader starts over, no publish counts on a consumer seen before.
    watch,
    consumers() {
      return Promise.all(
        [...declared.keys()].map((key) => {
          const [topic, group, partition] = JSON.parse(key) as [string, string, number];
          return addConsumer(topic, group, partition);
        }),
      );
    },
    report: (error) => report(error, 'topology'),
  });

  /** Whether a topic has a consumer, for a publish with `requireSubscription`. */
  const subscriptions = createSubscriptionsSeen({ jsm, names, watch, restore });

  const ensurePartition = (topic: string, group: string, partition: number, again = false): Promise<void> => {
    const key = JSON.stringify([topic, group, partition]);
    let done = again ? undefined : declared.get(key);
    if (!done) {
      done = addConsumer(topic, group, partition)
        .catch(async (error: unknown) => {
          // The stream was deleted at the server: made again (only where missing), then this consumer added.
          if (!isStreamMissing(error)) throw error;
          await restore();
          await addConsumer(topic, group, partition);
        })
        .catch((error: unknown) => {
          if (declared.get(key) === done) declared.delete(key);
          throw error;
        });
      declared.set(key, done);
    }
    return done;
  };

  const declare = (topic: string, group: string): Promise<void> => {
    const epoch = watch.epoch();
    const work = checkPartitionCount(topic)
      // Added again on every declaration (idempotent at the server): one deleted since is made again.
      .then(() =>
        Promise.all(Array.from({ length: options.partitions }, (_, p) => ensurePartition(topic, group, p, true))),
      )
      .then(() => {
        subscriptions.seen(topic, epoch);
      });
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

  const publisher = createPublisher(nc, Math.max(5000, options.connectTimeoutMs));

  return {
    stream: names.stream,
    connected: () => connected && !closed,
    heldPartitions(topic, group) {
      return (
        readers
          .get(groupKey(topic, group))
          ?.reader.partitions()
          .sort((a, b) => a - b) ?? []
      );
    },

    system: 'nats',
    capabilities: {
      delayedDelivery: true,
      deadLettering: true,
      perKeyOrder: true,
      competingConsumers: true,
      durable: true,
    },

    async publish(topic, messages, publishOptions) {
      if (closed) throw new StoreClosedError('transport');
      assertTopicAndGroup(topic);
      assertMessages(messages);
      const required = checkTransportPublishOptions(publishOptions);
      if (messages.length === 0) return;
      const pending = declaring.get(topic);
      if (pending) await Promise.allSettled(pending);
      await checkPartitionCount(topic);
      if (required && !(await subscriptions.has(topic))) throw new NoSubscriptionError(topic);
      const items = encodeMessages(names, topic, messages, options);
      try {
        await publisher.publishAll(items);
      } catch (error) {
        // No stream answered: deleted at the server, it is made again (with this transport's consumers) and the
        // call sent once more (what of it a stream made meanwhile stored is dropped as a repeat: same Nats-Msg-Id).
        if (!foundNoStream(error)) throw error;
        await restore();
        if (required && !(await subscriptions.has(topic))) throw new NoSubscriptionError(topic);
        await publisher.publishAll(items);
      }
    },

    async declareSubscription(topic, group) {
      if (closed) throw new StoreClosedError('transport');
      assertTopicAndGroup(topic, group);
      await declare(topic, group);
    },

    async redeliver(topic, group, messages) {
      if (closed) throw new StoreClosedError('transport');
      assertTopicAndGroup(topic, group);
      assertMessages(messages);
      await declare(topic, group);
      await publisher.publishAll(encodeRedelivery(names, topic, group, options.partitions, messages));
    },

    subscribe(topic: string, group: string, given?: SubscribeOptions): Subscription {
      const subscribeOptions = checkSubscribeOptions(given) ?? {};
      assertTopicAndGroup(topic, group);
      if (closed) throw new StoreClosedError('transport');
      const visibility = subscribeOptions.visibilityTimeoutMs ?? 30_000;
      const key = groupKey(topic, group);
      let shared = readers.get(key);
      if (!shared) {
        declare(topic, group).catch((error: unknown) => report(error, 'consume'));
        const reader = createGroupReader({
          names,
          topic,
          group,
          partitions: options.partitions,
          prefetch: options.prefetch,
          maxDeliver: options.maxDeliver,
          ackWaitMs: options.ackWaitMs,
          deadLetters: options.deadLetters,
          js: () => js,
          ensureConsumer: (partition, again) => {
            // Found missing: publishes must not count on a subscription remembered from before.
            if (again) subscriptions.forget(topic);
            return checkPartitionCount(topic).then(() => ensurePartition(topic, group, partition, again));
          },
          async pending(partition) {
            const info = await jsm.consumers.info(names.stream, names.consumer(topic, group, partition));
            return { ackPending: info.num_ack_pending, deliveredSeq: info.delivered.stream_seq };
          },
          report,
          // Until a reconnection's check of the stream is done: held messages may be of a stream deleted meanwhile.
          connected: () => connected && !watch.checking(),
        });
        const scope = names.claimScope(topic, group);
        const claims = createPartitionClaims(
          {
            // Nothing is claimed (no member either) while the topic's partition count is refused.
            bucket: () => checkPartitionCount(topic).then(claimBucket.open),
            checkBucket: claimBucket.check,
            scope,
            label: `${topic}/${group}`,
            async members() {
              const info = await jsm.streams.info(`KV_${names.claims}`, {
                subjects_filter: `$KV.${names.claims}.member.${scope}.*`,
              });
              return Object.keys(info.state.subjects ?? {}).length;
            },
            async remove(key) {
              await jsm.streams.purge(`KV_${names.claims}`, { filter: `$KV.${names.claims}.${key}` });
            },
            partitions: options.partitions,
            ttlMs: options.claimTtlMs,
            report: (error) => report(error, 'claim'),
            connected: () => connected,
          },
          reader,
        );
        shared = { reader, claims, users: 0 };
        readers.set(key, shared);
        claims.start();
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
            own.reader.endPulls();
            await own.reader.settled();
            await own.claims.stop();
            await own.reader.stop();
          }
        },
      };
    },

    async backlog(topic, group) {
      if (closed) throw new StoreClosedError('transport');
      assertTopicAndGroup(topic, group);
      try {
        return await readBacklog(jsm, names, topic, group, options.partitions);
      } catch (error) {
        throw new TransportError(`reading the backlog of ${topic}/${group} failed: ${String(error)}`, { cause: error });
      }
    },

    async defaultDeadLetterStore(): Promise<DeadLetterStore> {
      if (!options.deadLetters) {
        throw new TransportError(
          'the NATS transport was given no deadLetters store: give one to it or to the consumer',
          {
            retryable: false,
          },
        );
      }
      return options.deadLetters;
    },

    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(
        [...readers.values()].map(async ({ reader, claims }) => {
          reader.endPulls();
          await reader.settled();
          await claims.stop();
          await reader.stop();
        }),
      );
      readers.clear();
      watch.close();
      // Drain: the acks and naks sent above reach the server before the connection closes.
      await settledWithin(nc.drain(), 5000);
      await nc.close().catch(() => undefined);
      publisher.close();
    },
  };
}
