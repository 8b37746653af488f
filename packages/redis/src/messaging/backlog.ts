import type { TransportBacklog } from '@factline/core';
import { globEscape, type RedisCommandSender } from '../connection.ts';
import type { RedisKeys } from '../keys.ts';
import { idTime, infoRow, isNoSuchKey, parseEntries } from './stream-replies.ts';

/** The `createdAt` of a message's JSON as stored, in ms; `undefined` when it cannot be read. */
function createdAtOf(json: string | undefined): number | undefined {
  if (json === undefined) return undefined;
  try {
    const at = Date.parse((JSON.parse(json) as { createdAt?: unknown }).createdAt as string);
    return Number.isNaN(at) ? undefined : at;
  } catch {
    return undefined;
  }
}

const earliest = (a: number | undefined, b: number | undefined) =>
  a === undefined ? b : b === undefined ? a : Math.min(a, b);

/**
 * What waits for `group` on `topic`: in each partition stream the group's
 * pending entries and those it has not read (`XINFO GROUPS`), with the first
 * of them's `createdAt` (its entry's time when the message cannot be read);
 * and in the delayed set the messages scheduled for the topic, for every
 * group or for this one (`ZSCAN`, matching the member's stream, a few hundred
 * members a call: the set is never read in one blocking command), with their
 * `createdAt`. A partition with no stream yet holds nothing; any other
 * failure rejects, never a zero.
 */
export async function readBacklog(
  client: RedisCommandSender,
  keys: RedisKeys,
  partitions: number,
  topic: string,
  group: string,
): Promise<TransportBacklog> {
  let messages = 0;
  let oldestAt: number | undefined;
  for (let p = 0; p < partitions; p++) {
    const stream = keys.stream(topic, p);
    const info = (await client.sendCommand(['XINFO', 'GROUPS', stream]).catch((error: unknown) => {
      if (isNoSuchKey(error)) return [];
      throw error;
    })) as unknown[];
    for (const row of info) {
      const fields = infoRow(row);
      if (String(fields.get('name')) !== group) continue;
      const pending = Number(fields.get('pending') ?? 0);
      const lag = Number(fields.get('lag') ?? 0);
      messages += pending + lag;
      // The summary's first pending id; none when the group acked them all since XINFO (a snapshot, not a lock).
      const firstPending =
        pending > 0 ? ((await client.sendCommand(['XPENDING', stream, group])) as unknown[] | null)?.[1] : undefined;
      const from =
        firstPending !== undefined && firstPending !== null
          ? String(firstPending)
          : lag > 0
            ? `(${String(fields.get('last-delivered-id'))}`
            : undefined;
      if (from === undefined) continue;
      const [first] = parseEntries(await client.sendCommand(['XRANGE', stream, from, '+', 'COUNT', '1']));
      if (first) oldestAt = earliest(oldestAt, createdAtOf(first.fields?.m) ?? idTime(first.id));
    }
  }
  const delayed = await readDelayed(client, keys, topic, group);
  return { messages: messages + delayed.messages, oldestAt: earliest(oldestAt, delayed.oldestAt) };
}

/** The delayed set's messages for `topic`'s streams and for `group` (or every group). */
async function readDelayed(client: RedisCommandSender, keys: RedisKeys, topic: string, group: string) {
  const prefix = keys.stream(topic, 0).slice(0, -1);
  // The member's JSON names its stream first (`"s":"<prefix><p>"`); the pattern narrows the scan, the parse decides.
  const pattern = `*${globEscape(JSON.stringify(prefix).slice(1, -1))}[0-9]*`;
  let messages = 0;
  let oldestAt: number | undefined;
  let cursor = '0';
  do {
    const [next, flat] = (await client.sendCommand([
      'ZSCAN',
      keys.delayed,
      cursor,
      'MATCH',
      pattern,
      'COUNT',
      '500',
    ])) as [unknown, unknown[]];
    cursor = String(next);
    for (let i = 0; i < flat.length; i += 2) {
      let member: { s?: unknown; m?: unknown; o?: unknown };
      try {
        member = JSON.parse(String(flat[i]));
      } catch {
        continue;
      }
      const stream = String(member.s);
      if (!stream.startsWith(prefix) || !/^[0-9]+$/.test(stream.slice(prefix.length))) continue;
      if (member.o !== '' && member.o !== group) continue;
      messages += 1;
      oldestAt = earliest(oldestAt, createdAtOf(typeof member.m === 'string' ? member.m : undefined));
    }
  } while (cursor !== '0');
  return { messages, oldestAt };
}
