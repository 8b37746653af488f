import { TransportError } from '@factline/core';
import { JetStreamApiCodes, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { isStreamMissing, type Names } from '../topology.ts';

/**
 * The key, in the partition count bucket (`<app>_partitions`), saying the claim bucket was made: one found missing
 * while it is there was deleted, and claims of it may still be held. (A count's key has no `.`: never this one.)
 */
export const CLAIMS_MADE_KEY = 'claims.made';

/** Writes `CLAIMS_MADE_KEY` where it is missing. */
export async function markClaimsMade(counts: KV): Promise<void> {
  try {
    await counts.create(CLAIMS_MADE_KEY, '1');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (
      code !== JetStreamApiCodes.StreamWrongLastSequence &&
      code !== JetStreamApiCodes.StreamWrongLastSequenceUnknown
    ) {
      throw error;
    }
  }
}

/**
 * Whether claims may be held in the application (for a partition count bucket found missing and made again,
 * which says nothing of the claim bucket any more): its claim bucket is there, or its stream has consumers
 * (groups were declared, so processes may have claimed their partitions).
 */
export async function claimsMayBeHeld(jsm: JetStreamManager, names: Names): Promise<boolean> {
  const present = await jsm.streams.info(`KV_${names.claims}`).then(
    () => true,
    (error: unknown) => {
      if (isStreamMissing(error)) return false;
      throw error;
    },
  );
  if (present) return true;
  try {
    for await (const _ of await jsm.consumers.list(names.stream)) return true;
  } catch (error) {
    if (!isStreamMissing(error)) throw error;
  }
  return false;
}

/** What the claim bucket of one transport needs. */
export interface ClaimBucketSettings {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: Names;
  /** The entries' TTL (`claimTtlMs`). */
  ttlMs: number;
  /** Told that the bucket was found deleted (stage `topology`). */
  report(error: unknown): void;
}

/**
 * The application's claim bucket (`<app>_claims`), opened on first use
 * (again after a failure). One found missing is made at once only where it
 * was never made: `CLAIMS_MADE_KEY` (written by whoever makes or opens it)
 * is missing from the partition count bucket. One that was made, and is
 * missing now (found by `open`, or by `check` after a failed claim round),
 * was deleted at the server: it is made again `ttlMs` later, `open`
 * resolving undefined until then: by that time every process has given up
 * the claims it could not renew, as at a claim's expiry, so none still pulls
 * a partition another claims.
 *
 * @example
 * const claimBucket = createClaimBucket({ js, jsm, names, ttlMs: 10_000, report });
 * const kv = await claimBucket.open(); // undefined while a deleted bucket waits to be made again
 */
export function createClaimBucket(settings: ClaimBucketSettings) {
  const { names } = settings;
  let bucket: Promise<KV | undefined> | undefined;
  /** When the bucket was found deleted (`performance.now()`), until `ttlMs` later. */
  let goneAt: number | undefined;
  /** The deletion was waited out: the bucket may be made (until it is opened). */
  let waited = false;
  const kvm = new Kvm(settings.js);

  const gone = () => {
    bucket = undefined;
    goneAt = performance.now();
    settings.report(
      new TransportError(
        `the claim bucket '${names.claims}' was missing at the server (deleted): it is made again with this transport's configuration in ${settings.ttlMs} ms (claimTtlMs), once every process has given its claims up, and the partitions claimed anew`,
      ),
    );
  };

  /** Told, not thrown: the claims work without it (a later deletion of the bucket is then taken for its first use). */
  const mark = (counts: KV) =>
    markClaimsMade(counts).catch((error: unknown) =>
      settings.report(
        new TransportError(
          `writing '${CLAIMS_MADE_KEY}' to the partition count bucket '${names.partitionCounts}' failed: ${String(error)}`,
          { cause: error },
        ),
      ),
    );

  /** The bucket: the one there (never made here), else made where it never was, or once its deletion is waited out. */
  const opening = async (): Promise<KV | undefined> => {
    const counts = await kvm.open(names.partitionCounts);
    if (!waited) {
      const present = await settings.jsm.streams.info(`KV_${names.claims}`).then(
        () => true,
        (error: unknown) => {
          if (isStreamMissing(error)) return false;
          throw error;
        },
      );
      if (present) {
        const kv = await kvm.open(names.claims);
        await mark(counts);
        return kv;
      }
      // Missing with the count bucket missing too: nothing says it was never made.
      const made = await counts.get(CLAIMS_MADE_KEY).then(
        (entry) => entry?.operation === 'PUT',
        (error: unknown) => {
          if (isStreamMissing(error)) return true;
          throw error;
        },
      );
      if (made) {
        gone();
        return undefined;
      }
    }
    const kv = await kvm.create(names.claims, { ttl: settings.ttlMs, history: 1 });
    waited = false;
    await mark(counts);
    return kv;
  };

  return {
    open(): Promise<KV | undefined> {
      if (goneAt !== undefined) {
        if (performance.now() - goneAt < settings.ttlMs) return Promise.resolve(undefined);
        goneAt = undefined;
        waited = true;
      }
      if (!bucket) {
        const opened: Promise<KV | undefined> = opening().then(
          (kv) => {
            if (!kv && bucket === opened) bucket = undefined;
            return kv;
          },
          (error: unknown) => {
            if (bucket === opened) bucket = undefined;
            throw new TransportError(`opening the claim bucket '${names.claims}' failed: ${String(error)}`, {
              cause: error,
            });
          },
        );
        bucket = opened;
      }
      return bucket;
    },
    /** Whether the bucket opened is still at the server; one deleted is forgotten (told), to be made again. */
    async check(): Promise<void> {
      const opened = bucket;
      if (!opened) return;
      try {
        await settings.jsm.streams.info(`KV_${names.claims}`);
      } catch (error) {
        if (!isStreamMissing(error) || bucket !== opened) return;
        gone();
      }
    },
  };
}
