import { TransportError } from '@factline/core';
import { keptOnSuccess } from '@factline/core/adapter';
import { JetStreamApiCodes, type JetStreamClient } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { Names } from '../topology.ts';

/**
 * The check of each topic's partition count: every process of an application
 * must give the same `partitions`, or one key lands in two partitions with two
 * readers and loses its order. The first use of a topic records the count in
 * the `<app>_partitions` bucket (`kv.create`: only the first count is kept);
 * another count is refused with a `TransportError` that is not retryable. A
 * passed check is kept per topic; a failed one runs again on the next call.
 *
 * @example
 * const checkPartitionCount = createPartitionCountCheck(js, names, 'shop', 4);
 * await checkPartitionCount('orders'); // before declaring or publishing anything for the topic
 */
export function createPartitionCountCheck(
  js: JetStreamClient,
  names: Names,
  application: string,
  partitions: number,
): (topic: string) => Promise<void> {
  let countBucket: Promise<KV> | undefined;
  /** The application's partition count bucket (no TTL), created on first use (again after a failure). */
  const partitionCountBucket = (): Promise<KV> => {
    countBucket ??= new Kvm(js).create(names.partitionCounts, { history: 1 }).catch((error: unknown) => {
      countBucket = undefined;
      const text = `opening the partition count bucket '${names.partitionCounts}' failed: ${String(error)}`;
      throw new TransportError(text, { cause: error });
    });
    return countBucket;
  };
  /**
   * Records this transport's `partitions` as `topic`'s count where none is, or compares it with the recorded
   * one: another count is refused (not retryable), since it would send a key to two partitions.
   */
  const recordOrCompareCount = async (topic: string): Promise<void> => {
    const kv = await partitionCountBucket();
    const key = names.countKey(topic);
    const where = `(${names.partitionCounts} bucket, key ${key})`;
    const failed = (doing: string, error: unknown) =>
      new TransportError(`${doing} the partition count of topic '${topic}' ${where} failed: ${String(error)}`, {
        cause: error,
      });
    // A key deleted between the create and the get (a count being changed) is created again: a few rounds at most.
    for (let round = 0; round < 3; round++) {
      try {
        await kv.create(key, String(partitions));
        return;
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (
          code !== JetStreamApiCodes.StreamWrongLastSequence &&
          code !== JetStreamApiCodes.StreamWrongLastSequenceUnknown
        ) {
          throw failed('recording', error);
        }
      }
      let entry: Awaited<ReturnType<KV['get']>>;
      try {
        entry = await kv.get(key);
      } catch (error) {
        throw failed('reading', error);
      }
      if (entry?.operation !== 'PUT') continue;
      const recorded = entry.string();
      if (!/^[1-9][0-9]*$/.test(recorded)) {
        throw new TransportError(
          `topic '${topic}' has '${recorded}' recorded as its partition count in the NATS application '${application}' ${where}, not a positive integer: put the count every process uses there (nats kv put ${names.partitionCounts} ${key} <count>), or delete the key (nats kv del ${names.partitionCounts} ${key}) to have the next declaration record its own`,
          { retryable: false },
        );
      }
      if (Number(recorded) === partitions) return;
      throw new TransportError(
        `topic '${topic}' has ${recorded} partitions in the NATS application '${application}' ${where}, and this transport was given partitions: ${partitions}: every process of an application must use the same count, or keys land in other partitions and lose their order (to change it: stop every process, let the groups drain, delete the key (nats kv del ${names.partitionCounts} ${key}), start them all with the new count)`,
        { retryable: false },
      );
    }
    throw new TransportError(
      `recording the partition count of topic '${topic}' ${where} failed: the key was deleted under it again and again`,
    );
  };
  /** Per topic, the check of its partition count: a success is kept, a failure is forgotten (checked again). */
  const checks = keptOnSuccess<void>();
  return (topic) => checks.get(topic, () => recordOrCompareCount(topic));
}
