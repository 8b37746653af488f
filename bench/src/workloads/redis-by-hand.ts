/**
 * The `by-hand` subject of `redis-e2e`: what a careful user writes with node-redis alone for the
 * seed's idempotent consumer, one process, one stream. Publishing as the raw subject does (pipelined
 * `XADD` of the same JSON); consuming `XREADGROUP COUNT 64` batches where each message is parsed,
 * claimed (`SET processed:<id> <claim> NX GET PX 10000`, the batch's claims pipelined), handled when
 * the claim was taken, then marked (`SET processed:<id> 1 EX 86400`) and the batch acknowledged in
 * one `XACK`. It has what the seed asks for and no more: no fencing of a mark or an ack by a lease,
 * no per-key order across processes, no retry policy or dead letters, no handler failure path.
 */

import type { Message } from '@factline/core';
import { messageFromJson, messageToJson } from '@factline/core/adapter';

/** The node-redis client calls used: any connected client. */
interface Client {
  sendCommand(args: string[]): Promise<unknown>;
}

/**
 * One `XREADGROUP GROUP g c COUNT 64 BLOCK 1000` of new entries of `stream` (the raw and by-hand
 * subjects' read): the entries, `[id, [field, value, ...]]`, none after a second without any.
 */
export async function readGroupBatch(reader: Client, stream: string): Promise<[string, string[]][]> {
  const reply = (await reader.sendCommand([
    'XREADGROUP',
    'GROUP',
    'g',
    'c',
    'COUNT',
    '64',
    'BLOCK',
    '1000',
    'STREAMS',
    stream,
    '>',
  ])) as Record<string, [string, string[]][]> | null;
  // RESP3 (node-redis 6's default): a map of stream name → entries.
  return reply ? (Object.values(reply)[0] ?? []) : [];
}

export interface ByHandRun {
  /** Publishes every message, pipelined. */
  publish(): Promise<void>;
  /** Reads, claims, handles, marks and acknowledges until `count` messages were handled. */
  consume(): Promise<void>;
}

/**
 * @example
 * const run = byHandRun({ client, reader, stream, prefix, messages, handle });
 * await Promise.all([run.publish(), run.consume()]);
 */
export function byHandRun(settings: {
  client: Client;
  reader: Client;
  stream: string;
  prefix: string;
  messages: readonly Message[];
  handle: (message: Message) => void;
}): ByHandRun {
  const { client, reader, stream, prefix, messages, handle } = settings;
  const bodies = messages.map((m) => messageToJson(m));
  let claims = 0;
  return {
    async publish() {
      await Promise.all(bodies.map((body) => client.sendCommand(['XADD', stream, '*', 'm', body])));
    },
    async consume() {
      let settled = 0;
      while (settled < messages.length) {
        const entries = await readGroupBatch(reader, stream);
        if (entries.length === 0) continue;
        const batch = entries.map(([id, fields]) => ({ id, message: messageFromJson(fields[1] as string) }));
        const claim = `c:${process.pid}.${++claims}`;
        const held = (await Promise.all(
          batch.map(({ message }) =>
            client.sendCommand(['SET', `${prefix}processed:${message.id}`, claim, 'NX', 'GET', 'PX', '10000']),
          ),
        )) as (string | null)[];
        const marks: Promise<unknown>[] = [];
        const acks: string[] = [];
        batch.forEach(({ id, message }, i) => {
          // null: this run holds the claim; '1': marked before (a duplicate); else another run holds it
          // and the entry stays pending for it.
          if (held[i] !== null && held[i] !== '1') return;
          if (held[i] === null) {
            handle(message);
            marks.push(client.sendCommand(['SET', `${prefix}processed:${message.id}`, '1', 'EX', '86400']));
          }
          acks.push(id);
        });
        if (acks.length > 0) marks.push(client.sendCommand(['XACK', stream, 'g', ...acks]));
        await Promise.all(marks);
        settled += batch.length;
      }
    },
  };
}
