import { performance } from 'node:perf_hooks';
import { TransportError } from '@factline/core';

/** What a claim call found: the message claimed for the run, its mark, or another run's claim and its PTTL (-1: none). */
export type ClaimOutcome = 'claimed' | 'done' | { heldMs: number };

export interface ClaimWaits {
  /**
   * Claims a message another run holds once that run's claim ends: it looks
   * again (`claimAgain`) when the claim would expire (`heldMs` from the last
   * look) and every quarter of `claimMs` meanwhile (a live run ends with the
   * mark, or drops its claim when its handler fails), for `claimMs` and a
   * tenth (at most 1 s) more in all. A run that died leaves a claim that
   * expires within `claimMs` of its last renewal: one still held after that
   * is renewed by a run that lives. Resolves `'claimed'` or `'done'`; rejects
   * with the retryable "being handled by another run" once the bound passed,
   * with a retryable `TransportError` when the inbox closes (`close`), and
   * with a failing look's error.
   */
  waitOut(
    claimAgain: () => Promise<ClaimOutcome>,
    heldMs: number,
    run: { id: string; consumer: string },
  ): Promise<'claimed' | 'done'>;
  /** Ends every wait; a wait started later ends at once. */
  close(): void;
}

/**
 * The waits of the Redis inbox's runs that found their message claimed by
 * another run: a message given back instead comes again through its
 * transport, and each hand-out counts toward the consumer's `maxDeliveries`.
 *
 * @example
 * const waits = createClaimWaits(10_000);
 * if (typeof outcome === 'object') outcome = await waits.waitOut(() => claims.call(item), outcome.heldMs, { id, consumer });
 */
export function createClaimWaits(claimMs: number): ClaimWaits {
  const boundMs = claimMs + Math.min(1000, Math.ceil(claimMs / 10));
  const everyMs = Math.max(1, Math.floor(claimMs / 4));
  /** The pauses in progress, each ended (rejected) by the close. */
  const pauses = new Set<() => void>();
  let closed = false;
  const closedError = ({ id, consumer }: { id: string; consumer: string }) =>
    new TransportError(
      `the Redis inbox closed while message ${id} of consumer '${consumer}' waited for another run's claim to end`,
    );
  const pause = (ms: number, run: { id: string; consumer: string }) =>
    new Promise<void>((resolve, reject) => {
      if (closed) {
        reject(closedError(run));
        return;
      }
      const end = () => {
        clearTimeout(timer);
        reject(closedError(run));
      };
      const timer = setTimeout(() => {
        pauses.delete(end);
        resolve();
      }, ms);
      pauses.add(end);
    });

  return {
    async waitOut(claimAgain, heldMs, run) {
      const started = performance.now();
      let held = heldMs;
      for (;;) {
        const waited = performance.now() - started;
        if (waited >= boundMs) {
          throw new TransportError(
            `message ${run.id} is being handled by another run of consumer '${run.consumer}' (its claim still held after ${Math.round(waited)} ms, claimMs ${claimMs})`,
          );
        }
        // Just past the claim's expiry (its PTTL), read by Redis's clock: a claim no run renews is gone by then.
        await pause(Math.min(boundMs - waited, everyMs, held >= 0 ? held + 1 : everyMs), run);
        const outcome = await claimAgain();
        if (typeof outcome === 'string') return outcome;
        held = outcome.heldMs;
      }
    },

    close() {
      closed = true;
      for (const end of pauses) end();
      pauses.clear();
    },
  };
}
