/** One stream entry as RESP2 returns it: its id and its fields (null when the entry was deleted). */
export interface RawEntry {
  id: string;
  fields: Record<string, string> | undefined;
}

const text = (value: unknown) => (Buffer.isBuffer(value) ? value.toString('utf8') : String(value));

/** `[id, [field, value, ...]]` pairs into entries. */
export function parseEntries(reply: unknown): RawEntry[] {
  if (!Array.isArray(reply)) return [];
  return reply.map((item) => {
    const [id, flat] = item as [unknown, unknown];
    if (!Array.isArray(flat)) return { id: text(id), fields: undefined };
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[text(flat[i])] = text(flat[i + 1]);
    return { id: text(id), fields };
  });
}

/**
 * The `XREADGROUP` of up to `count` new entries of each of `streams`, read by `consumer` of `group`, blocking up
 * to `blockMs` (`undefined`: not at all).
 */
export const readNewCommand = (
  group: string,
  consumer: string,
  count: number,
  blockMs: number | undefined,
  streams: string[],
) => [
  'XREADGROUP',
  'GROUP',
  group,
  consumer,
  'COUNT',
  String(count),
  ...(blockMs === undefined ? [] : ['BLOCK', String(blockMs)]),
  'STREAMS',
  ...streams,
  ...streams.map(() => '>'),
];

/** An `XREADGROUP` reply (`[[stream, entries], ...]` or null) by stream key. */
export function parseStreams(reply: unknown): Map<string, RawEntry[]> {
  const out = new Map<string, RawEntry[]>();
  if (reply instanceof Map) {
    for (const [stream, entries] of reply) out.set(text(stream), parseEntries(entries));
    return out;
  }
  if (reply !== null && typeof reply === 'object' && !Array.isArray(reply)) {
    // node-redis hands a multi-stream reply over as an object keyed by stream.
    for (const [stream, entries] of Object.entries(reply)) out.set(stream, parseEntries(entries));
    return out;
  }
  if (!Array.isArray(reply)) return out;
  for (const item of reply) {
    const [stream, entries] = item as [unknown, unknown];
    out.set(text(stream), parseEntries(entries));
  }
  return out;
}

/** An `XAUTOCLAIM` reply: the next cursor and the claimed entries (deleted ones left out). */
export function parseAutoClaim(reply: unknown): { next: string; entries: RawEntry[] } {
  const [next, entries] = (Array.isArray(reply) ? reply : ['0-0', []]) as [unknown, unknown];
  return { next: text(next), entries: parseEntries(entries).filter((entry) => entry.fields !== undefined) };
}

/** An extended `XPENDING` reply (`[id, consumer, idle, times]` rows): each entry's holder and times delivered. */
export function parsePendingHolders(reply: unknown): Map<string, { owner: string; times: number }> {
  const out = new Map<string, { owner: string; times: number }>();
  if (!Array.isArray(reply)) return out;
  for (const item of reply) {
    const [id, owner, , times] = item as [unknown, unknown, unknown, unknown];
    out.set(text(id), { owner: text(owner), times: Number(times) });
  }
  return out;
}

/** The time part (ms) of a stream id. */
export const idTime = (id: string) => Number(id.split('-')[0]);

/** True for a server reply naming a missing consumer group (the server restarted without persistence). */
export const isNoGroup = (error: unknown) => /NOGROUP/.test(String((error as Error)?.message ?? error));

/** Redis's answer about a key that does not exist (an `XINFO` on a stream nothing was written to). */
export const isNoSuchKey = (error: unknown) => /no such key/i.test(String((error as Error)?.message ?? error));

/** One row of an `XINFO` reply as a map, whether node-redis gave it flat (`[name, value, ...]`) or as an object. */
export function infoRow(row: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (Array.isArray(row)) {
    for (let i = 0; i + 1 < row.length; i += 2) out.set(String(row[i]), row[i + 1]);
  } else if (row instanceof Map) {
    for (const [key, value] of row) out.set(String(key), value);
  } else if (row !== null && typeof row === 'object') {
    for (const [key, value] of Object.entries(row)) out.set(key, value);
  }
  return out;
}

/** The later of two stream entry ids (`<ms>-<seq>`), by their numbers. */
export function laterId(a: string, b: string): string {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am > bm || (am === bm && as > bs) ? a : b;
}

/**
 * `XREADGROUP` of this consumer's own pending entries after `after` (one id per stream), never blocking: what a
 * read whose reply was lost moved into its pending list without it seeing them.
 */
export const readOwnPendingCommand = (
  group: string,
  consumer: string,
  count: number,
  streams: string[],
  after: string[],
) => ['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(count), 'STREAMS', ...streams, ...after];
