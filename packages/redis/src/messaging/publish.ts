import type { Message } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import type { RedisClient } from '../connection.ts';
import { partitionOf, type RedisKeys } from '../keys.ts';

let sequence = 0;

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
 * Writes a publish: each message due now is an `XADD` to its partition's
 * stream, each due later a `ZADD` to the delayed set; all sent at once on one
 * connection (node-redis pipelines the commands of one turn), resolved when
 * Redis answered for every one. A key's messages after a delayed one in the
 * same publish are delayed with it, so they keep their order.
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
  for (const message of messages) {
    const stream = keys.stream(topic, partitionOf(message.key, partitions));
    const json = messageToJson(message);
    const due = Math.max(message.deliverAt?.getTime() ?? 0, heldKeys.get(message.key) ?? 0);
    if (due > at) {
      heldKeys.set(message.key, due);
      sent.push(client.sendCommand(['ZADD', keys.delayed, String(due), delayedMember(stream, json, 0, only ?? '')]));
    } else if (only !== undefined) {
      sent.push(client.sendCommand(['XADD', stream, '*', 'm', json, 'o', only]));
    } else {
      sent.push(client.sendCommand(['XADD', stream, '*', 'm', json]));
    }
  }
  await Promise.all(sent);
}
