import type { RedisClient } from '../connection.ts';

interface Waiting {
  ids: string[];
  done: { resolve(): void; reject(error: unknown): void }[];
}

/**
 * Acknowledges a group's entries in batches: the acks asked for in one turn
 * of the event loop go out together at the next turn, one `XACK` per stream
 * with every id, and each caller is resolved when Redis answered (or rejected
 * with its error: the entry stays pending and comes back, never lost).
 *
 * @example
 * const acks = createAckBatcher(client, (p) => `shop:stream:orders:${p}`, 'billing', () => undefined);
 * await acks.ack(0, '1733390000000-0');
 */
export function createAckBatcher(
  client: RedisClient,
  streamOf: (partition: number) => string,
  group: string,
  acked: () => void,
) {
  let waiting = new Map<number, Waiting>();
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    const batch = waiting;
    waiting = new Map();
    for (const [partition, { ids, done }] of batch) {
      client.sendCommand(['XACK', streamOf(partition), group, ...ids]).then(
        () => {
          for (const d of done) d.resolve();
          acked();
        },
        (error: unknown) => {
          for (const d of done) d.reject(error);
        },
      );
    }
  };

  return {
    /** Resolves once Redis acknowledged entry `id` of `partition`'s stream (with the others of this turn). */
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
