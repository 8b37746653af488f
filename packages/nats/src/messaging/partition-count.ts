import { TransportError } from '@factline/core';
import { keptOnSuccess } from '@factline/core/adapter';
import { JetStreamApiCodes, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { isStreamMissing, type Names } from '../topology.ts';
import { claimsMayBeHeld, markClaimsMade } from './claim-bucket.ts';

/**
 * The check of each topic's partition count: every process of an application
 * must give the same `partitions`, or one key lands in two partitions with two
 * readers and loses its order. The first use of a topic records the count in
 * the `<app>_partitions` bucket (`kv.create`: only the first count is kept);
 * another count is refused with a `TransportError` that is not retryable. A
 * passed check is kept per topic; a failed one runs again on the next call.
 * A bucket deleted at the server (with the counts it held) is made again
 * where it is missing (told to `report`) and the check tried once more.
 *
 * @example
 * const checkPartitionCount = createPartitionCountCheck({ js, jsm, report, connected }, names, 'shop', 4);
 * await checkPartitionCount('orders'); // before declaring or publishing anything for the topic
 */
export function createPartitionCountCheck(
  {
    js,
    jsm,
    report,
    connected,
  }: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    report(error: unknown): void;
    /** False while the client reconnects: the bucket is not looked for then (the look could only time out). */
    connected(): boolean;
  },
  names: Names,
  application: string,
  partitions: number,
): (topic: string) => Promise<void> {
  let countBucket: Promise<KV> | undefined;
  /** The bucket opened was found deleted: the one made next says the claim bucket was made (it may have been). */
  let lost = false;
  /**
   * Opens the bucket, made where it is missing. One this process makes holds no `CLAIMS_MADE_KEY` (see
   * `createClaimBucket`): it is written when the bucket was lost, or claims may be held (a claim bucket or
   * consumers are there), so that a claim bucket deleted later is not taken for one never made.
   */
  const openCountBucket = async (): Promise<KV> => {
    const missing = await jsm.streams.info(`KV_${names.partitionCounts}`).then(
      () => false,
      (error: unknown) => {
        if (isStreamMissing(error)) return true;
        throw error;
      },
    );
    const kv = await new Kvm(js).create(names.partitionCounts, { history: 1 });
    if (missing && (lost || (await claimsMayBeHeld(jsm, names)))) await markClaimsMade(kv);
    lost = false;
    return kv;
  };
  /** The application's partition count bucket (no TTL), created on first use (again after a failure). */
  const partitionCountBucket = (): Promise<KV> => {
    countBucket ??= openCountBucket().catch((error: unknown) => {
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
  /** Whether the bucket opened is gone from the server; then it is forgotten (told), to be made again. */
  const bucketDeleted = async (): Promise<boolean> => {
    const opened = countBucket;
    if (!opened || !connected()) return false;
    try {
      await jsm.streams.info(`KV_${names.partitionCounts}`);
      return false;
    } catch (error) {
      if (!isStreamMissing(error)) return false;
    }
    if (countBucket === opened) {
      countBucket = undefined;
      lost = true;
      // Recorded again at each topic's next use (or refused, if another process recorded another count first).
      for (const topic of checked) checks.forget(topic);
      checked.clear();
      report(
        new TransportError(
          `the partition count bucket '${names.partitionCounts}' was missing at the server (deleted): made again with this transport's configuration; the counts it held are lost, and each topic's count is recorded again at its next use`,
        ),
      );
    }
    return true;
  };
  const checkOnce = async (topic: string): Promise<void> => {
    try {
      await recordOrCompareCount(topic);
    } catch (error) {
      if ((error as TransportError).retryable === false || !(await bucketDeleted().catch(() => false))) throw error;
      await recordOrCompareCount(topic);
    }
    checked.add(topic);
  };
  /** Per topic, the check of its partition count: a success is kept, a failure is forgotten (checked again). */
  const checks = keptOnSuccess<void>();
  /** The topics whose check passed (forgotten with a bucket found deleted). */
  const checked = new Set<string>();
  return (topic) => checks.get(topic, () => checkOnce(topic));
}
