import { commandError, type RedisClient } from '../connection.ts';
import { runScript } from '../scripts.ts';
import type { LeaseHolder } from './ack-with-mark.ts';

interface Waiting {
  ids: string[];
  done: { resolve(): void; reject(error: unknown): void }[];
}

/** At most this many ids in one script call (Lua's `unpack` has a limit). */
const MOST_IDS = 1000;

export interface AckBatcherSettings {
  client: RedisClient;
  group: string;
  /** The stream of a partition, and its lease key. */
  streamOf(partition: number): string;
  leaseOf(partition: number): string;
  /** The lease value while this reader holds a partition (its fencing token). */
  token: string;
  /** Entries were acked: there is room for more. */
  acked(): void;
  /** A partition's lease was found with another holder, or none (it ran out): nothing of it was acked. */
  fenced(partition: number, holder: LeaseHolder): void;
}

/**
 * Acknowledges a group's entries in batches: the acks asked for in one turn
 * of the event loop go out together at the next turn, one script call per
 * stream with every id, which acks only while the partition's lease still
 * holds this reader's token (a reader that paused past its lease does not ack
 * what the new holder now has). Each caller is resolved when Redis answered
 * (also when fenced off: the entry is the new holder's), or rejected with the
 * error (the entry stays pending and comes back, never lost).
 *
 * @example
 * const acks = createAckBatcher({ client, group: 'billing', streamOf, leaseOf, token, acked, fenced });
 * await acks.ack(0, '1733390000000-0');
 */
export function createAckBatcher(settings: AckBatcherSettings) {
  const { client, group, token } = settings;
  let waiting = new Map<number, Waiting>();
  let scheduled = false;

  const send = (partition: number, ids: string[], done: Waiting['done']) => {
    runScript(
      client,
      'ackFenced',
      [settings.streamOf(partition), settings.leaseOf(partition)],
      [group, token, ...ids],
    ).then(
      (reply) => {
        // Fenced off (-1: another holder; -2: none, the lease ran out): the reader lets the partition go before the
        // callers learn their ack is done.
        if (Number(reply) < 0) settings.fenced(partition, Number(reply) === -2 ? 'none' : 'another');
        else settings.acked();
        for (const d of done) d.resolve();
      },
      (error: unknown) => {
        const failure = commandError(error, `acknowledging ${ids.length} entries of ${settings.streamOf(partition)}`);
        for (const d of done) d.reject(failure);
      },
    );
  };

  const flush = () => {
    scheduled = false;
    const batch = waiting;
    waiting = new Map();
    for (const [partition, { ids, done }] of batch) {
      for (let i = 0; i < ids.length; i += MOST_IDS) {
        send(partition, ids.slice(i, i + MOST_IDS), done.slice(i, i + MOST_IDS));
      }
    }
  };

  return {
    /** Resolves once Redis answered for entry `id` of `partition`'s stream (with the others of this turn). */
    ack(partition: number, id: string): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        let entry = waiting.get(partition);
        if (!entry) {
          entry = { ids: [], done: [] };
          waiting.set(partition, entry);
        }
        entry.ids.push(id);
        entry.done.push({ resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
  };
}
