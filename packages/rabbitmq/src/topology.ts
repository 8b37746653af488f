import { TransportError } from '@factline/core';
import { assertName } from '@factline/core/adapter';
import type { Channel } from 'amqplib';

/**
 * The names the transport declares for one application, and how it declares
 * them. Everything is durable; group and delay queues are quorum queues.
 *
 * - `<app>`: topic exchange; a message goes out with routing key
 *   `<topic>.<partition>` (partition = hash of its key).
 * - `<app>.<topic>.<group>.<p>`: group queue, bound with `<topic>.<p>`;
 *   single active consumer, `x-delivery-limit`, dead-letters to `<app>.dead`.
 * - `<app>.dead` (direct) → `<app>.<topic>.<group>.dead`: the group's dead letters.
 * - `<app>.retry.<ms>` (fanout exchange and queue): message TTL `<ms>`,
 *   dead-lettered to the default exchange with the routing key it was
 *   published with (the group queue's name): straight back to the group
 *   queue it came from (`release(delay)`).
 * - `<app>.delay.<ms>` (the same, dead-lettering into `<app>` with the
 *   routing key `<topic>.<p>`): a message published with a `deliverAt`
 *   reaches every group of its topic when due.
 * - `<app>.<topic>.partitions`: an empty queue whose `x-max-length` records
 *   the topic's partition count (partition-count.ts).
 */

/** Delay tiers in ms: 64 × 4^k, 64 ms to 70 minutes. A longer delay takes the largest tier again. */
export const delayTiers: readonly number[] = [64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304];

/** A delay shorter than this is held in the process (the message stays unacknowledged) instead of a tier. */
export const localHoldMs = delayTiers[0] as number;

/** The tier for a remaining delay: the largest not longer than it (a message never comes back early). */
export function delayTierFor(remainingMs: number): number | undefined {
  let found: number | undefined;
  for (const tier of delayTiers) if (tier <= remainingMs) found = tier;
  return found;
}

/** `*` and `#` are wildcards in binding keys, `%` escapes them: a topic routes only to itself. */
export const routingTopic = (topic: string) =>
  topic.replace(/[%*#]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** FNV-1a of the key: stable across processes and versions. */
export function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}

export interface Names {
  exchange: string;
  deadExchange: string;
  routingKey(topic: string, partition: number): string;
  groupQueue(topic: string, group: string, partition: number): string;
  deadQueue(topic: string, group: string): string;
  /** Where messages of the dead-letter queue that are not Factline messages are kept for an operator. */
  unreadableQueue(topic: string, group: string): string;
  /** The delay tier back to one group queue (`'retry'`) or into the topic exchange (`'delay'`). */
  tier(tier: number, kind: TierKind): string;
  /** The empty queue whose `x-max-length` records the topic's partition count (partition-count.ts). */
  partitionCount(topic: string): string;
}

export type TierKind = 'retry' | 'delay';

export function topologyNames(application: string): Names {
  return {
    exchange: application,
    deadExchange: `${application}.dead`,
    routingKey: (topic, partition) => `${routingTopic(topic)}.${partition}`,
    groupQueue: (topic, group, partition) => `${application}.${topic}.${group}.${partition}`,
    deadQueue: (topic, group) => `${application}.${topic}.${group}.dead`,
    unreadableQueue: (topic, group) => `${application}.${topic}.${group}.unreadable`,
    tier: (tier, kind) => `${application}.${kind}.${tier}`,
    partitionCount: (topic) => `${application}.${topic}.partitions`,
  };
}

/** AMQP names are at most 255 bytes. */
export const fitsAmqpName = (name: string) => Buffer.byteLength(name) <= 255;

/**
 * Refuses a topic or group that is no name (`ValidationError`), or whose
 * queues with `partitions` would pass RabbitMQ's 255 bytes (a `TransportError`
 * that is not retryable): before anything is declared or sent. Without a
 * group, the longest name any group of the topic could still have.
 *
 * @example
 * assertQueueNames(topologyNames('shop'), 4, 'orders', 'billing');
 */
export function assertQueueNames(names: Names, partitions: number, topic: string, group?: string): void {
  assertName(topic, 'topic');
  if (group !== undefined) assertName(group, 'group');
  const longest = names.groupQueue(topic, group ?? '', partitions) + (group === undefined ? '.dead' : '');
  const unreadable = names.unreadableQueue(topic, group ?? '') + (group === undefined ? '.dead' : '');
  if (!fitsAmqpName(`${longest}.dead`) || !fitsAmqpName(unreadable)) {
    throw new TransportError(`the queue names for topic '${topic}' would pass RabbitMQ's 255-byte limit`, {
      retryable: false,
    });
  }
}

const quorum = { 'x-queue-type': 'quorum' };
/** Dead-lettering that keeps the message until the target queue confirmed it (quorum queues only). */
const atLeastOnce = { 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' };

/** What one transport declared, so it can declare it again after a reconnect (and tests can remove it). */
export interface Declared {
  readonly exchanges: Set<string>;
  readonly queues: Set<string>;
}

export async function declareExchanges(channel: Channel, names: Names): Promise<void> {
  await channel.assertExchange(names.exchange, 'topic', { durable: true });
  await channel.assertExchange(names.deadExchange, 'direct', { durable: true });
}

/** The group's queues, bindings and dead-letter queue. Idempotent: the same arguments every time. */
export async function declareGroup(
  channel: Channel,
  names: Names,
  topic: string,
  group: string,
  settings: { partitions: number; deliveryLimit: number },
  declared: Declared,
): Promise<void> {
  const dead = names.deadQueue(topic, group);
  // The partition queues first: a publish waits for them; the dead-letter queue is needed only later.
  for (let p = 0; p < settings.partitions; p++) {
    const queue = names.groupQueue(topic, group, p);
    await channel.assertQueue(queue, {
      durable: true,
      arguments: {
        ...quorum,
        'x-single-active-consumer': true,
        'x-delivery-limit': settings.deliveryLimit,
        'x-dead-letter-exchange': names.deadExchange,
        'x-dead-letter-routing-key': dead,
        ...atLeastOnce,
      },
    });
    await channel.bindQueue(queue, names.exchange, names.routingKey(topic, p));
    declared.queues.add(queue);
  }
  await channel.assertQueue(dead, { durable: true, arguments: { ...quorum } });
  await channel.bindQueue(dead, names.deadExchange, dead);
  declared.queues.add(dead);
}

/** The group's queue of unreadable dead letters (no binding: written through the default exchange). */
export async function declareUnreadableQueue(
  channel: Channel,
  names: Names,
  topic: string,
  group: string,
  declared: Declared,
): Promise<void> {
  const queue = names.unreadableQueue(topic, group);
  await channel.assertQueue(queue, { durable: true, arguments: { ...quorum } });
  declared.queues.add(queue);
}

/** One delay tier: a fanout exchange into a queue whose messages expire back to the group queue or the topic exchange. */
export async function declareDelayTier(
  channel: Channel,
  names: Names,
  tier: number,
  kind: TierKind,
  declared: Declared,
) {
  const name = names.tier(tier, kind);
  await channel.assertExchange(name, 'fanout', { durable: true });
  await channel.assertQueue(name, {
    durable: true,
    arguments: {
      ...quorum,
      ...atLeastOnce,
      'x-message-ttl': tier,
      'x-dead-letter-exchange': kind === 'retry' ? '' : names.exchange,
    },
  });
  await channel.bindQueue(name, name, '');
  declared.exchanges.add(name);
  declared.queues.add(name);
}
