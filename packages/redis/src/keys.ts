/**
 * The keys the transport writes for one application (`<app>` is its
 * `application` option). Every key starts with `<app>:`.
 *
 * - `<app>:stream:<topic>:<p>`: the stream of partition `p` of a topic; one
 *   consumer group per Factline group on it. Fields: `m` the message JSON,
 *   `n` hand-outs before (a released message), `o` the one group it is for
 *   (a release or a redrive; other groups skip it).
 * - `<app>:groups:<topic>`: set of the groups declared for the topic.
 * - `<app>:partitions`: hash of each declared topic's partition count, written
 *   by the first declaration; a transport given another count is refused.
 * - `<app>:delayed`: sorted set of messages due later (score: due time in ms),
 *   moved into their stream by a script when due.
 * - `<app>:lease:<topic>:<group>:<p>`: who reads partition `p` for the group.
 * - `<app>:readers:<topic>:<group>`: sorted set of the group's live readers
 *   (score: when their registration expires), to share partitions fairly.
 * - `<app>:dead` and `<app>:dead:live`: dead letters (see redis-dead-letters.ts).
 *
 * In the lease and readers keys the topic is written with `keyPart`, so the
 * first `:` after it ends it: topic `a:b` with group `c` and topic `a` with
 * group `b:c` get keys of their own.
 */
export interface RedisKeys {
  stream(topic: string, partition: number): string;
  groups(topic: string): string;
  partitions: string;
  delayed: string;
  lease(topic: string, group: string, partition: number): string;
  readers(topic: string, group: string): string;
  deadLetters: string;
  liveDeadLetters: string;
}

export function redisKeys(application: string): RedisKeys {
  return {
    stream: (topic, partition) => `${application}:stream:${topic}:${partition}`,
    groups: (topic) => `${application}:groups:${topic}`,
    partitions: `${application}:partitions`,
    delayed: `${application}:delayed`,
    lease: (topic, group, partition) => `${application}:lease:${keyPart(topic)}:${group}:${partition}`,
    readers: (topic, group) => `${application}:readers:${keyPart(topic)}:${group}`,
    deadLetters: `${application}:dead`,
    liveDeadLetters: `${application}:dead:live`,
  };
}

/**
 * A name as one part of a key, with no `:` in it: `%` as `%25` and `:` as
 * `%3A`; a name with neither is written as it is.
 */
export const keyPart = (name: string): string =>
  /[%:]/.test(name) ? name.replace(/%/g, '%25').replace(/:/g, '%3A') : name;

/** FNV-1a of the key: stable across processes and versions. */
export function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}

/** The consumer name pending entries are handed back to at shutdown; the next holder claims them. */
export const RETURNED_CONSUMER = 'factline-returned';
