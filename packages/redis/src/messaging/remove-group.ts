import { TransportError } from '@factline/core';
import { commandError, type RedisClient } from '../connection.ts';
import type { RedisKeys } from '../keys.ts';
import { runScript } from '../scripts.ts';

/** How many members of the delayed set one `ZSCAN` page asks for. */
const PAGE = 500;

/**
 * Removes `group` of `topic` (see `RedisTransport.removeGroup`): refused while
 * a reader of the group is registered or holds a partition; then the delayed
 * messages for it alone (its retries waiting) go too, and those for every
 * group when it was the topic's last. Resolves false when the group was not
 * declared.
 */
export async function removeGroup(
  client: RedisClient,
  keys: RedisKeys,
  partitions: number,
  topic: string,
  group: string,
): Promise<boolean> {
  const streams = Array.from({ length: partitions }, (_, p) => keys.stream(topic, p));
  const leases = Array.from({ length: partitions }, (_, p) => keys.lease(topic, group, p));
  const [outcome, detail] = (await runScript(
    client,
    'removeGroup',
    [keys.groups(topic), keys.readers(topic, group), keys.partitions, ...streams, ...leases],
    [group, topic, partitions],
  ).catch((error: unknown) => {
    throw commandError(error, `removing ${topic}/${group} on Redis`);
  })) as [string, number];
  if (outcome === 'partitions') {
    throw new TransportError(
      `topic '${topic}' has ${detail} partitions in this Redis application (${keys.partitions}), and this transport was given partitions: ${partitions}: open the transport with the topic's count to remove its group (nothing was removed)`,
      { retryable: false },
    );
  }
  if (outcome === 'readers') {
    throw new TransportError(
      `group '${group}' of topic '${topic}' still has ${detail} registered reader(s): stop its consumers first (a process that died leaves its registration until its lease time, leaseMs, ends)`,
      { retryable: false },
    );
  }
  if (outcome === 'lease') {
    throw new TransportError(
      `partition ${detail} of '${topic}' is still held for group '${group}' (${keys.lease(topic, group, Number(detail))}): stop its consumers first, or wait for the lease of a process that died to end`,
      { retryable: false },
    );
  }
  const lastGroup = Number(await client.sendCommand(['SCARD', keys.groups(topic)])) === 0;
  await dropDelayed(client, keys.delayed, new Set(streams), group, lastGroup).catch((error: unknown) => {
    throw commandError(error, `removing the delayed messages of ${topic}/${group} on Redis`);
  });
  // A mover may have appended due messages to the deleted streams before they left the delayed set.
  if (lastGroup) {
    await runScript(client, 'dropStreamsWithoutGroups', [keys.groups(topic), ...streams], []).catch(
      (error: unknown) => {
        throw commandError(error, `removing the streams of ${topic} on Redis`);
      },
    );
  }
  return Number(detail) === 1;
}

/** Removes from the delayed set the members of `streams` for `group` alone, or for any group when `all`. */
async function dropDelayed(
  client: RedisClient,
  delayed: string,
  streams: ReadonlySet<string>,
  group: string,
  all: boolean,
): Promise<void> {
  let cursor = '0';
  do {
    const [next, page] = (await client.sendCommand(['ZSCAN', delayed, cursor, 'COUNT', String(PAGE)])) as [
      unknown,
      unknown[],
    ];
    cursor = String(next);
    const doomed: string[] = [];
    // Member, score, member, score…
    for (let i = 0; i < page.length; i += 2) {
      const member = String(page[i]);
      let item: { s?: unknown; o?: unknown };
      try {
        item = JSON.parse(member) as { s?: unknown; o?: unknown };
      } catch {
        continue;
      }
      if (typeof item.s === 'string' && streams.has(item.s) && (item.o === group || all)) doomed.push(member);
    }
    if (doomed.length > 0) await client.sendCommand(['ZREM', delayed, ...doomed]);
  } while (cursor !== '0');
}
