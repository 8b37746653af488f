import { setTimeout as sleep } from 'node:timers/promises';
import { type DeadLetter, type DeadLetterStore, TransportError } from '@factline/core';
import { createDeliveryBuffer, messageFromJson, settledWithin } from '@factline/core/adapter';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { CLOSE_WAIT_MS, closeWithin } from '../connection.ts';
import type { RabbitErrorStage } from '../options.ts';
import { delayTierFor, localHoldMs, type Names, type TierKind } from '../topology.ts';
import { type Acker, createAcker } from './acker.ts';
import { createAwayCount } from './away.ts';
import { deadLetterRecordId } from './dead-letter-id.ts';
import type { Outgoing } from './publish.ts';
import { COUNT_HEADER, DUE_HEADER, type Entry, readIncoming } from './receive.ts';

/** What a group reader needs from its transport. */
export interface ReaderContext {
  names: Names;
  topic: string;
  group: string;
  partitions: number;
  prefetch: number;
  deliveryLimit: number;
  deadLetters: DeadLetterStore | undefined;
  /** The open connection, or undefined while the transport reconnects. */
  connection(): ChannelModel | undefined;
  /** Declares the group's queues on the current connection; `again`: even if this connection did already. */
  declareGroup(again: boolean): Promise<void>;
  declareTier(tier: number, kind: TierKind): Promise<void>;
  /** Declares the group's queue of unreadable dead letters (`names.unreadableQueue`). */
  declareUnreadable(): Promise<void>;
  /** Publishes with confirms; rejects when the broker did not confirm. */
  publish(items: readonly Outgoing[]): Promise<unknown>;
  report(error: unknown, stage: RabbitErrorStage): void;
}

/**
 * One process's reader of one group: a channel consuming each partition queue
 * (single active consumer: while this process is active on a partition no
 * other process gets its messages), the dead-letter queue drained into the
 * dead-letter store, and the buffer its subscriptions receive from. A cancel
 * from the server or a lost channel is reported and the reader starts over
 * (declaring the queues again); after a reconnect the transport calls
 * `resume`.
 */
export function createGroupReader(context: ReaderContext) {
  const { names, topic, group } = context;
  let generation = 0;
  let channel: Channel | undefined;
  /** Settles the deliveries of `channel` (acks coalesced per turn of the event loop). */
  let acker: Acker | undefined;
  let stopped = false;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;
  let restartAttempt = 0;
  let starting: Promise<void> | undefined;
  /** Set by a cancel from the server: its queue may be gone, declare it again. */
  let redeclare = false;
  /** Releases in a delay tier (shared by every group: its depth is no measure of this one's). */
  const away = createAwayCount();
  /** Deliveries from the group queues since the reader was made (rises only; the backlog reads it around a count). */
  let arrived = 0;

  const buffer = createDeliveryBuffer<Entry>(
    {
      holds: (entry) => entry.generation === generation,
      ack(entry) {
        // From a channel that closed: the broker took it back with that channel and hands it out again, so
        // resolving would say the group never sees it again; the ack is refused (retryable) instead.
        if (entry.generation !== generation || !acker?.ack(entry.raw)) {
          throw new TransportError(
            `the ack of message ${entry.message.id} in ${topic}/${group} cannot reach RabbitMQ (the channel that delivered it closed): it will be delivered again`,
          );
        }
      },
      async delay(entry, dueAt) {
        return delayEntry(entry, dueAt, entry.count);
      },
    },
    { parkGraceMs: 5000, holdBelowMs: localHoldMs, onDelayError: (error) => context.report(error, 'delay') },
  );

  /** Re-publishes `entry` through the delay tier for what is left until `dueAt`, then acks it. */
  const delayEntry = async (entry: Entry, dueAt: number, count: number): Promise<boolean> => {
    const tier = delayTierFor(dueAt - Date.now());
    if (tier === undefined) return false;
    const seen = generation;
    try {
      await context.declareTier(tier, 'retry');
      await context.publish([
        {
          exchange: names.tier(tier, 'retry'),
          routingKey: names.groupQueue(topic, group, entry.partition),
          content: entry.raw.content,
          headers: { [COUNT_HEADER]: count, [DUE_HEADER]: dueAt },
          messageId: entry.message.id,
        },
      ]);
    } catch (error) {
      context.report(error, 'delay');
      return false;
    }
    away.add(tier);
    // The copy is confirmed; the original goes. A channel lost meanwhile returns it: a duplicate, never a loss.
    if (seen === generation) acker?.ack(entry.raw);
    return true;
  };

  const onMessage = (raw: ConsumeMessage, partition: number, seen: number) => {
    let incoming: ReturnType<typeof readIncoming>;
    try {
      incoming = readIncoming(raw);
    } catch (error) {
      // Not a Factline message: to the dead-letter queue rather than around forever.
      context.report(new TransportError(`an unreadable message in ${topic}/${group}`, { cause: error }), 'consume');
      if (seen === generation) acker?.nack(raw, false);
      return;
    }
    const entry: Entry = {
      message: incoming.message,
      raw,
      partition,
      generation: seen,
      visibleAt: incoming.dueAt,
      count: incoming.count,
      lease: 0,
      holder: undefined,
    };
    if (seen !== generation) return;
    // Due later: through a delay tier again, its key parked meanwhile, so that a later message of the key
    // that arrives with less left (held here) waits for it; held here if the tier cannot take it.
    if (incoming.dueAt - Date.now() >= localHoldMs) buffer.defer(entry, incoming.dueAt);
    else buffer.add(entry);
  };

  /** Closes of channels the reader gave up (a cancel from the server, a failed start): `stop` waits for them. */
  const closing = new Set<Promise<void>>();

  /**
   * Closes a channel the reader gave up, waiting for the broker's close-ok at most `CLOSE_WAIT_MS`: past it the
   * channel is left to its connection (its unacknowledged deliveries go back when that closes), told.
   */
  const closeAside = (own: Channel) => {
    const done = closeWithin(own).then((confirmed) => {
      closing.delete(done);
      if (confirmed) return;
      context.report(
        new TransportError(
          `RabbitMQ did not confirm closing the channel of ${topic}/${group} within ${CLOSE_WAIT_MS} ms (after its consumer was cancelled or its start failed): left to its connection, its unacknowledged messages go back when that closes`,
        ),
        'consume',
      );
    });
    closing.add(done);
  };

  /** Stores that failed one after the other: the next try waits 100 ms, doubling to 5 s. */
  let storeFailures = 0;
  /** Dead letters on their way to the store or the unreadable queue: `stop` waits for them to ack. */
  const draining = new Set<Promise<void>>();
  /** Aborted by `stop`: a store's backoff ends there (the dead letter goes back with the channel). */
  const stopping = new AbortController();

  /** Runs the drain of one dead letter, kept in `draining` until it settled. */
  const drainOne = (raw: ConsumeMessage, own: Acker, seen: number) => {
    // Stopping: left unacknowledged, it goes back to its queue with the channel.
    if (stopped) return;
    const done = onDeadLetter(raw, own, seen)
      .catch((error: unknown) => context.report(error, 'dead-letters'))
      .finally(() => draining.delete(done));
    draining.add(done);
  };

  /**
   * Moves a broker dead letter into the store, then acks it. Its record's id
   * names the dead-lettering (deadLetterRecordId): handed out again (its ack
   * lost after the record was kept), it is acked without a second record,
   * whatever became of the first one meanwhile (redriven, discarded). An unreadable one
   * is moved aside and told, and a store that fails is tried again after a
   * backoff while the channel lasts: requeued at once, either would come
   * straight back, round and round.
   */
  const onDeadLetter = async (raw: ConsumeMessage, own: Acker, seen: number) => {
    const store = context.deadLetters;
    if (!store) return;
    let message: ReturnType<typeof messageFromJson>;
    try {
      message = messageFromJson(raw.content.toString('utf8'));
    } catch (error) {
      await setAsideUnreadable(raw, own, seen, error);
      return;
    }
    const at = new Date();
    const record: DeadLetter = {
      id: deadLetterRecordId(raw, names.deadQueue(topic, group), message.id),
      consumer: group,
      topic,
      message,
      error: {
        type: 'DeliveryLimitExceeded',
        message: `handed out more than ${context.deliveryLimit} times without an acknowledgement (x-delivery-limit)`,
      },
      reason: 'the broker dead-lettered it: delivery limit exceeded',
      attempts: context.deliveryLimit,
      firstFailureAt: at,
      lastFailureAt: at,
      deadLetteredAt: at,
      redrives: [],
      state: 'dead',
    };
    for (;;) {
      try {
        // Kept already (whatever its state now): this delivery is that dead-lettering handed out again.
        if (!(await store.get(record.id))) await store.add(record);
        storeFailures = 0;
        own.ack(raw);
        return;
      } catch (error) {
        context.report(error, 'dead-letters');
        storeFailures += 1;
        const backoff = Math.min(5000, 100 * 2 ** Math.min(storeFailures - 1, 6));
        // Stopping ends the backoff: the dead letter goes back with the channel.
        await sleep(backoff, undefined, { ref: false, signal: stopping.signal }).catch(() => undefined);
        // The channel gone, the broker has it back: the next channel's drain takes it.
        if (stopped || seen !== generation) return;
      }
    }
  };

  /**
   * Moves a dead letter that is not a Factline message to the group's unreadable queue (confirmed, then acked),
   * told once: left unacknowledged in the dead-letter queue, `prefetch` of them would stop its drain. Where the
   * move fails it stays there unacknowledged (it comes back at the reader's next start), told as well.
   */
  const setAsideUnreadable = async (raw: ConsumeMessage, own: Acker, seen: number, error: unknown) => {
    const queue = names.unreadableQueue(topic, group);
    try {
      await context.declareUnreadable();
      await context.publish([
        {
          exchange: '',
          routingKey: queue,
          content: raw.content,
          headers: { ...(raw.properties.headers ?? {}) },
          messageId: String(raw.properties.messageId ?? ''),
        },
      ]);
    } catch (moveError) {
      context.report(
        new TransportError(
          `an unreadable message in the dead-letter queue ${names.deadQueue(topic, group)} could not be moved to ${queue}: left there for an operator`,
          { cause: moveError },
        ),
        'dead-letters',
      );
      return;
    }
    if (seen === generation) own.ack(raw);
    context.report(
      new TransportError(
        `an unreadable message in the dead-letter queue ${names.deadQueue(topic, group)}: moved to ${queue} for an operator`,
        { cause: error },
      ),
      'dead-letters',
    );
  };

  const scheduleRestart = () => {
    if (stopped || restartTimer) return;
    restartAttempt += 1;
    const delay = Math.min(5000, 100 * 2 ** Math.min(restartAttempt - 1, 6));
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!stopped && context.connection()) void start();
    }, delay);
  };

  const start = (): Promise<void> => {
    starting ??= (async () => {
      const connection = context.connection();
      // Consuming already (a restart timer and a resume may both ask): one channel per reader.
      if (stopped || !connection || channel) return;
      generation += 1;
      const seen = generation;
      buffer.drop((e) => e.generation <= seen - 1);
      let own: Channel | undefined;
      let settle: Acker | undefined;
      try {
        await context.declareGroup(redeclare);
        redeclare = false;
        own = await connection.createChannel();
        // The broker's reason for closing the channel (e.g. `consumer_timeout`: a delivery held past it),
        // told with the close below.
        let closedBecause: Error | undefined;
        own.on('error', (error: Error) => {
          closedBecause = error;
        });
        settle = createAcker(own);
        const ownAcker = settle;
        own.on('close', () => {
          ownAcker.close();
          if (channel !== own) return;
          channel = undefined;
          acker = undefined;
          buffer.drop((e) => e.generation <= seen);
          if (!stopped && context.connection()) {
            context.report(
              new TransportError(
                `the channel of ${topic}/${group} closed${closedBecause ? `: ${closedBecause.message}` : ''}`,
                closedBecause ? { cause: closedBecause } : {},
              ),
              'consume',
            );
            scheduleRestart();
          }
        });
        channel = own;
        acker = settle;
        await own.prefetch(context.prefetch);
        /** `counted`: its deliveries wait for the group (the dead-letter queue's are on their way out). */
        const consumeFrom = async (queue: string, counted: boolean, handle: (raw: ConsumeMessage) => void) => {
          await own?.consume(queue, (raw) => {
            if (raw) {
              settle?.delivered(raw, counted);
              if (counted) arrived += 1;
              return handle(raw);
            }
            // Cancelled by the server (queue deleted, node lost): a fault, never a silently dead consumer.
            context.report(new TransportError(`RabbitMQ cancelled the consumer of queue '${queue}'`), 'consume');
            if (channel === own) {
              channel = undefined;
              acker = undefined;
              settle?.close();
              redeclare = true;
              buffer.drop((e) => e.generation <= seen);
              if (own) closeAside(own);
              scheduleRestart();
            }
          });
        };
        // A random first partition, so processes starting together spread the active consumers.
        const offset = Math.floor(Math.random() * context.partitions);
        for (let i = 0; i < context.partitions; i++) {
          const partition = (offset + i) % context.partitions;
          await consumeFrom(names.groupQueue(topic, group, partition), true, (raw) => onMessage(raw, partition, seen));
        }
        if (context.deadLetters) {
          const drain = settle;
          await consumeFrom(names.deadQueue(topic, group), false, (raw) => drainOne(raw, drain, seen));
        }
        restartAttempt = 0;
        // Stopped meanwhile (its stop gave up waiting for this start): nobody reads this channel.
        if (stopped && channel === own) {
          channel = undefined;
          acker = undefined;
          settle.close();
          closeAside(own);
        }
      } catch (error) {
        if (channel === own) {
          channel = undefined;
          acker = undefined;
        }
        settle?.close();
        if (own) closeAside(own);
        if (!stopped) {
          context.report(error, 'consume');
          scheduleRestart();
        }
      }
    })().finally(() => {
      starting = undefined;
    });
    return starting;
  };

  return {
    buffer,
    start,
    /** What this process holds of the group unacknowledged (handed out or prefetched) or in a delay tier. */
    waiting: () => (acker?.outstanding() ?? 0) + away.count(),
    /** How many deliveries came from the group queues so far: a change tells that some arrived meanwhile. */
    arrived: () => arrived,
    /** After a reconnect: the old channel is gone with its messages; consume again. */
    resume() {
      if (stopped) return;
      // The old channel went with the old connection.
      channel = undefined;
      acker?.close();
      acker = undefined;
      buffer.drop((e) => e.generation <= generation);
      void start();
    },
    /**
     * Stops consuming; what is held and unacknowledged goes back to the broker, in order. Dead letters on their
     * way to the store or the unreadable queue are waited for (at most `CLOSE_WAIT_MS`, told when given up) and
     * acked before the channel closes; a store's backoff ends at once (that dead letter goes back).
     */
    async stop() {
      stopped = true;
      stopping.abort();
      clearTimeout(restartTimer);
      // A start waiting for a broker that stopped answering (a declaration, a channel, a consume) is given up:
      // what it still opens is closed when it gets there, or goes with the connection.
      if (starting && !(await settledWithin(starting, CLOSE_WAIT_MS))) {
        context.report(
          new TransportError(
            `RabbitMQ did not answer the start of the reader of ${topic}/${group} within ${CLOSE_WAIT_MS} ms: given up, what it opens goes with the connection`,
          ),
          'consume',
        );
      }
      // A release on its way to a delay tier acks its message once the copy is confirmed; a dead letter once it
      // is stored or moved (its ack, left to a channel closed before it, would hand it out again).
      const [, drained] = await Promise.all([
        buffer.settled(5000),
        settledWithin(Promise.all(draining), CLOSE_WAIT_MS),
      ]);
      if (!drained) {
        context.report(
          new TransportError(
            `${draining.size} dead letter(s) of ${topic}/${group} on their way to the dead-letter store or the unreadable queue did not finish within ${CLOSE_WAIT_MS} ms of the stop: given up unacknowledged, they stay in ${names.deadQueue(topic, group)} and are drained again at the next start`,
          ),
          'dead-letters',
        );
      }
      buffer.close();
      const own = channel;
      channel = undefined;
      // The acks of this turn go out before the channel closes (closing returns the unacknowledged).
      acker?.flush();
      acker = undefined;
      // Closing the channel returns every unacknowledged message to its queue (else the connection's close does).
      await Promise.all(closing);
      if (own && !(await closeWithin(own))) {
        context.report(
          new TransportError(
            `RabbitMQ did not confirm closing the channel of ${topic}/${group} within ${CLOSE_WAIT_MS} ms: its unacknowledged messages go back when the connection closes`,
          ),
          'consume',
        );
      }
    },
  };
}

export type GroupReader = ReturnType<typeof createGroupReader>;
