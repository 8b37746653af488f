import type { Message } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import type { RedisClient } from '../connection.ts';
import { partitionOf, type RedisKeys } from '../keys.ts';
import { runScriptInOrder } from '../scripts.ts';

let sequence = 0;

/** At most this many messages, or about this many characters of JSON, in one append call (one script run). */
const MOST_PER_CALL = 500;
const MOST_CHARS_PER_CALL = 1 << 20;

/**
 * A member of the delayed set: `q` first, so members due at the same time
 * move in the order they were scheduled (ties sort by member); `s` the stream,
 * `m` the message, `n` hand-outs before, `o` the one group it is for ('' = all).
 */
export function delayedMember(stream: string, json: string, count: number, only: string): string {
  const q = `${Date.now().toString(36).padStart(9, '0')}.${(sequence++).toString(36).padStart(8, '0')}.${process.pid}`;
  return JSON.stringify({ q, s: stream, m: json, n: count, o: only });
}

/**
 * Writes a publish: the messages due now go to their partitions' streams in
 * `append` script calls (one `XADD` each, in publish order per stream; up to
 * 500 messages or about 1 MB of JSON a call), each due later goes to the
 * delayed set (`schedule`: its delay from now, by Redis's clock), sent after
 * the calls holding the messages before it; all
 * sent at once on one connection (node-redis pipelines the commands of one
 * turn), resolved when Redis answered for every one. A key's messages after a
 * delayed one in the same publish are delayed with it, so they keep their order.
 */
export async function writeMessages(
  client: RedisClient,
  keys: RedisKeys,
  partitions: number,
  topic: string,
  messages: readonly Message[],
  only?: string,
): Promise<void> {
  const at = Date.now();
  const heldKeys = new Map<string, number>();
  const sent: Promise<unknown>[] = [];
  const streams: (string | undefined)[] = [];
  /** The JSON of the messages due now, by partition, not yet sent. */
  let waiting = new Map<number, string[]>();
  let count = 0;
  let chars = 0;
  const append = () => {
    const streamKeys: string[] = [];
    const args: string[] = [only ?? ''];
    for (const [partition, list] of waiting) {
      streamKeys.push(streams[partition] as string);
      args.push(String(list.length));
    }
    for (const list of waiting.values()) for (const json of list) args.push(json);
    sent.push(runScriptInOrder(client, 'append', streamKeys, args));
    waiting = new Map();
    count = 0;
    chars = 0;
  };
  for (const message of messages) {
    const partition = partitionOf(message.key, partitions);
    streams[partition] ??= keys.stream(topic, partition);
    const json = messageToJson(message);
    const due = Math.max(message.deliverAt?.getTime() ?? 0, heldKeys.get(message.key) ?? 0);
    if (due > at) {
      heldKeys.set(message.key, due);
      // The messages before it go first: once in the delayed set it may be moved (by any process) when due.
      if (count > 0) append();
      const member = delayedMember(streams[partition] as string, json, 0, only ?? '');
      // Its delay from now, timed by Redis's clock (the movers' clock); in order with the appends on this connection.
      sent.push(runScriptInOrder(client, 'schedule', [keys.delayed], [String(due - at), member]));
      continue;
    }
    const list = waiting.get(partition);
    if (list) list.push(json);
    else waiting.set(partition, [json]);
    count += 1;
    chars += json.length;
    if (count >= MOST_PER_CALL || chars >= MOST_CHARS_PER_CALL) append();
  }
  if (count > 0) append();
  await Promise.all(sent);
}
