import { TransportError } from '@factline/core';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { isStreamMissing, type Names } from '../topology.ts';

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
 * The application's claim bucket (`<app>_claims`), created on first use
 * (again after a failure), only where it is missing: one that is there is
 * used as it is. `check` (after a failed claim round) finds one deleted at
 * the server and forgets it; it is made again `ttlMs` later, `open`
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
  let bucket: Promise<KV> | undefined;
  /** When the bucket was found deleted (`performance.now()`), until it is made again. */
  let goneAt: number | undefined;
  return {
    open(): Promise<KV | undefined> {
      if (goneAt !== undefined) {
        if (performance.now() - goneAt < settings.ttlMs) return Promise.resolve(undefined);
        goneAt = undefined;
      }
      bucket ??= new Kvm(settings.js)
        .create(names.claims, { ttl: settings.ttlMs, history: 1 })
        .catch((error: unknown) => {
          bucket = undefined;
          throw new TransportError(`opening the claim bucket '${names.claims}' failed: ${String(error)}`, {
            cause: error,
          });
        });
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
        bucket = undefined;
        goneAt = performance.now();
        settings.report(
          new TransportError(
            `the claim bucket '${names.claims}' was missing at the server (deleted): it is made again with this transport's configuration in ${settings.ttlMs} ms (claimTtlMs), once every process has given its claims up, and the partitions claimed anew`,
          ),
        );
      }
    },
  };
}
