import { TransportError } from '@factline/core';
import { assertName } from '@factline/core/adapter';
import { JetStreamApiCodes, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';

/**
 * The names the transport creates for one application, and how it creates
 * them. One stream `<app>` (file storage, interest retention, a duplicate
 * window) takes the subjects `<app>.>`:
 *
 * - `<app>.<topic>.<p>.all`: a message published to `topic` (partition `p` =
 *   hash of its key); every group of the topic gets it.
 * - `<app>.<topic>.<p>.to.<group>`: a message redelivered to one group only
 *   (a dead-letter redrive); the other groups' readers skip it. Told from the
 *   other form by the token before the last (`to`), never by the ending: a
 *   group may be named `all`.
 * - durable pull consumer `<topic>~~<group>~~<p>`, filter `<app>.<topic>.<p>.>`,
 *   explicit ack, finite `max_deliver`, `ack_wait`, new messages only.
 * - key-value bucket `<app>_claims`: which process pulls which partition.
 * - key-value bucket `<app>_partitions` (no TTL): per topic, the partition
 *   count every process of the application must use.
 *
 * Topic and group names are written as subject tokens: letters, digits, `-`
 * and `_` as they are, any other character as `~` and the hex of its UTF-8 bytes.
 */

/**
 * FNV-1a of the key: stable across processes and versions (the same as the other broker transports).
 *
 * @example
 * partitionOf('order-1', 4); // the partition (0..3) every process sends order-1 to
 */
export function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}

/**
 * A name as one subject token (and part of a consumer name): no `.`, `*`, `>`, space or `~` left.
 *
 * @example
 * subjectToken('orders.eu'); // 'orders~2eeu'
 */
export function subjectToken(name: string): string {
  let out = '';
  for (const char of name) {
    if (/^[A-Za-z0-9_-]$/.test(char)) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `~${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/**
 * Throws a `ValidationError` unless `topic` (and `group`, when given) is a usable name.
 *
 * @example
 * assertTopicAndGroup('orders', 'billing'); // passes; assertTopicAndGroup('', 'billing') throws, naming `topic`
 */
export function assertTopicAndGroup(topic: string, group?: string): void {
  assertName(topic, 'topic');
  if (group !== undefined) assertName(group, 'group');
}

export interface Names {
  stream: string;
  /** Where a message of `topic` goes to every group. */
  subject(topic: string, partition: number): string;
  /** Where a message goes to `group` only. */
  groupSubject(topic: string, group: string, partition: number): string;
  /** What the consumer of one partition takes. */
  filter(topic: string, partition: number): string;
  /** The last token of a group-only subject for `group`. */
  groupToken(group: string): string;
  consumer(topic: string, group: string, partition: number): string;
  /** The prefix of every consumer of `topic`'s filter subjects (for "is anyone subscribed"). */
  topicPrefix(topic: string): string;
  /** The key-value bucket holding the partition claims. */
  claims: string;
  /** `<topic>.<group>` as key-value key tokens (base64url): the claims' and members' keys of one group. */
  claimScope(topic: string, group: string): string;
  /** The key-value bucket holding each topic's partition count (recorded once, no TTL). */
  partitionCounts: string;
  /** The key of `topic` in the `partitionCounts` bucket: its subject token with `=` for `~` (a key takes no `~`). */
  countKey(topic: string): string;
}

/** A topic or group name as a key-value key token (base64url: any name, in the characters a key takes). */
const keyToken = (name: string) => Buffer.from(name, 'utf8').toString('base64url');

/**
 * The stream, subjects and consumer names of one application.
 *
 * @example
 * topologyNames('shop').consumer('orders', 'billing', 0); // 'orders~~billing~~0'
 */
export function topologyNames(application: string): Names {
  return {
    stream: application,
    subject: (topic, p) => `${application}.${subjectToken(topic)}.${p}.all`,
    groupSubject: (topic, group, p) => `${application}.${subjectToken(topic)}.${p}.to.${subjectToken(group)}`,
    filter: (topic, p) => `${application}.${subjectToken(topic)}.${p}.>`,
    groupToken: (group) => subjectToken(group),
    consumer: (topic, group, p) => `${subjectToken(topic)}~~${subjectToken(group)}~~${p}`,
    topicPrefix: (topic) => `${application}.${subjectToken(topic)}.`,
    claims: `${application}_claims`,
    claimScope: (topic, group) => `${keyToken(topic)}.${keyToken(group)}`,
    partitionCounts: `${application}_partitions`,
    countKey: (topic) => subjectToken(topic).replaceAll('~', '='),
  };
}

const ns = (ms: number) => ms * 1_000_000;

/**
 * Checks that the application's stream takes its subjects and raises its duplicate window to `duplicateWindowMs`
 * where it is shorter (never lowers it): the publishes of a process that asked for longer are dropped as repeats
 * over all the time it counts on. Resolves its info; rejects "stream not found" (10059) where it is missing.
 */
export async function adoptStream(jsm: JetStreamManager, names: Names, duplicateWindowMs: number): Promise<StreamInfo> {
  const info = await jsm.streams.info(names.stream);
  if (!info.config.subjects?.includes(`${names.stream}.>`)) {
    throw new TransportError(
      `the JetStream stream '${names.stream}' exists without the subjects '${names.stream}.>': not one this transport made`,
      { retryable: false },
    );
  }
  if ((info.config.duplicate_window ?? 0) >= ns(duplicateWindowMs)) return info;
  return jsm.streams.update(names.stream, { ...info.config, duplicate_window: ns(duplicateWindowMs) });
}

/** Creates the application's stream, or adopts the one there (`adoptStream`). Idempotent; resolves its info. */
export async function ensureStream(
  jsm: JetStreamManager,
  names: Names,
  duplicateWindowMs: number,
): Promise<StreamInfo> {
  try {
    return await adoptStream(jsm, names, duplicateWindowMs);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  return (await addStream(jsm, names, duplicateWindowMs)) ?? adoptStream(jsm, names, duplicateWindowMs);
}

/**
 * The stream as the transport makes it: its subjects, file storage, interest retention, the duplicate window, one
 * replica (none of them options but the window).
 */
const streamConfig = (names: Names, duplicateWindowMs: number): Parameters<JetStreamManager['streams']['add']>[0] => ({
  name: names.stream,
  subjects: [`${names.stream}.>`],
  storage: 'file',
  retention: 'interest',
  duplicate_window: ns(duplicateWindowMs),
  num_replicas: 1,
});

/** Adds the stream; undefined when one of that name is there (another process made it meanwhile): left as it is. */
async function addStream(
  jsm: JetStreamManager,
  names: Names,
  duplicateWindowMs: number,
): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.add(streamConfig(names, duplicateWindowMs));
  } catch (error) {
    if (!/already in use|already exists/i.test(String(error))) throw error;
    return undefined;
  }
}

/**
 * Makes the application's stream again, with the transport's configuration, if it is missing at the server
 * (deleted while the process runs): true when this call made it. A stream of that name that is there is left
 * as it is, whatever its configuration, so a deliberate change is never undone.
 */
export async function restoreStream(jsm: JetStreamManager, names: Names, duplicateWindowMs: number): Promise<boolean> {
  try {
    await jsm.streams.info(names.stream);
    return false;
  } catch (error) {
    if (!isStreamMissing(error)) throw error;
  }
  return (await addStream(jsm, names, duplicateWindowMs)) !== undefined;
}

export const isNotFound = (error: unknown) => /not found/i.test(String((error as Error)?.message ?? error));

/** `error` and its causes (a few levels: the transport wraps the client's errors). */
function* causes(error: unknown): Generator<unknown> {
  for (let depth = 0; depth < 5 && error !== undefined && error !== null; depth += 1) {
    yield error;
    error = (error as { cause?: unknown }).cause;
  }
}

/** An API error of the server with that code (by its `code`: the client's error classes may come twice, CJS and ESM). */
const isApiError = (error: unknown, code: number) => (error as { code?: unknown }).code === code;

/** A pull ended by the server because its consumer or its stream was deleted (status 409). */
const isDeletedStatus = (error: unknown, what: 'consumer' | 'stream') =>
  (error as { code?: unknown }).code === 409 && String((error as Error).message).includes(`${what} deleted`);

/**
 * Whether the server said the stream is missing (on `error` or a cause): the API's "stream not found" (10059),
 * or a pull ended with "stream deleted".
 */
export const isStreamMissing = (error: unknown): boolean => {
  for (const e of causes(error)) {
    if (isApiError(e, JetStreamApiCodes.StreamNotFound)) return true;
    if (isDeletedStatus(e, 'stream')) return true;
  }
  return false;
};

/**
 * Whether the server said a consumer (or its stream) is missing: not found (10014, 10059), or a pull ended with
 * "consumer deleted" / "stream deleted" (status 409).
 */
export const isConsumerMissing = (error: unknown): boolean => {
  for (const e of causes(error)) {
    if (isApiError(e, JetStreamApiCodes.ConsumerNotFound)) return true;
    if (isDeletedStatus(e, 'consumer')) return true;
  }
  return isStreamMissing(error) || isNotFound(error);
};

/** The durable consumer of one partition of a group. The same configuration every time: adding it again is a no-op. */
export async function ensureConsumer(
  jsm: JetStreamManager,
  names: Names,
  topic: string,
  group: string,
  partition: number,
  settings: { maxDeliver: number; ackWaitMs: number },
): Promise<void> {
  await jsm.consumers.add(names.stream, {
    durable_name: names.consumer(topic, group, partition),
    filter_subject: names.filter(topic, partition),
    ack_policy: 'explicit',
    deliver_policy: 'new',
    max_deliver: settings.maxDeliver,
    ack_wait: ns(settings.ackWaitMs),
    max_ack_pending: 20_000,
    max_waiting: 512,
  });
}
