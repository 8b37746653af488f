import { TransportError } from '@factline/core';
import { answerWithin } from '@factline/core/adapter';
import { JetStreamApiCodes } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';

/** Whether a failed `kv.create` says the key exists (a claim is there): the server's "wrong last sequence". */
const isKeyTaken = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | undefined)?.code;
  return (
    code === JetStreamApiCodes.StreamWrongLastSequence || code === JetStreamApiCodes.StreamWrongLastSequenceUnknown
  );
};

/** The claim entry of `partition` in a group's scope (`Names.claimScope`): it names the process pulling it. */
export const claimKey = (scope: string, partition: number) => `claim.${scope}.${partition}`;

/** What the claims steer: the reader that pulls the partitions this process holds. */
export interface ClaimTarget {
  gain(partition: number): void;
  lose(partition: number): Promise<void>;
  /** Whether a partition can be given up now without cutting a handler short (nothing of it in flight). */
  idle(partition: number): boolean;
}

export interface ClaimSettings {
  /**
   * The application's claim bucket (entries expire `ttlMs` after their last write); undefined while it is not
   * to be used (deleted at the server, and not made again yet): the round does nothing.
   */
  bucket(): Promise<KV | undefined>;
  /** After a failed round: checks that the bucket is still there (one deleted at the server is made again). */
  checkBucket?(): Promise<void>;
  /** `<topic>.<group>` as key tokens. */
  scope: string;
  /** `<topic>/<group>` as given, for messages. */
  label: string;
  /** How many `member.<scope>.*` keys the bucket holds (a departed member counts until its entry expires). */
  members(): Promise<number>;
  /** Removes a key with no trace (a delete would leave a marker that counts as a member until it expires). */
  remove(key: string): Promise<void>;
  partitions: number;
  ttlMs: number;
  report(error: unknown): void;
  /** Whether the connection is up now: at `stop()` without it, the claims are left to expire rather than waited on. */
  connected?(): boolean;
}

/**
 * One process's claims on the partitions of one group, in a key-value bucket
 * whose entries expire `ttlMs` after their last write: `claim.<scope>.<p>`
 * names the process pulling partition `p` (created only where none is, so
 * one holder at a time), `member.<scope>.<id>` says the process is there.
 * Every third of `ttlMs` (at least every second) a process renews what it holds (a failed renewal
 * loses the partition at once), counts the members and evens out: it gives
 * up partitions above its share (only ones with nothing in flight, so no
 * handler is cut short) and claims free ones up to its share. A process that
 * dies stops renewing: its partitions are free after at most `ttlMs`, and the
 * next holder's gate waits for its unacknowledged messages.
 *
 * @example
 * const claims = createPartitionClaims(settings, reader);
 * claims.start();
 * await claims.stop(); // gives every partition up at once
 */
export function createPartitionClaims(settings: ClaimSettings, target: ClaimTarget) {
  const id = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  /** Partition → the revision of its claim entry. */
  const held = new Map<number, number>();
  /**
   * Partition → when its claim was last written (created or renewed), on `performance.now()` (monotonic: a wall
   * clock stepped back would keep a claim alive here past its expiry in the bucket).
   */
  const renewedAt = new Map<number, number>();
  let memberRevision: number | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const memberKey = `member.${settings.scope}.${id}`;
  const value = new TextEncoder().encode(id);

  const lose = (partition: number) => {
    held.delete(partition);
    renewedAt.delete(partition);
    // Not awaited: a slow give-back must not hold up the renewal of the other claims.
    const done = target.lose(partition).catch((error: unknown) => settings.report(error));
    losing.add(done);
    void done.finally(() => losing.delete(done));
  };
  const losing = new Set<Promise<void>>();

  /** A call to the server that gives up after a third of the ttl (a renewal that late is too late anyway). */
  const bounded = <T>(work: Promise<T>): Promise<T> =>
    answerWithin(work, Math.max(100, Math.floor(settings.ttlMs / 3)), () => new Error('no answer in time'));

  /**
   * Gives up every claim not renewed for two thirds of the ttl, whatever the
   * renewals are doing: by the time another process can take it (the ttl),
   * this one has stopped handing its messages out.
   */
  const expire = () => {
    const limit = performance.now() - Math.floor((settings.ttlMs * 2) / 3);
    for (const [partition, at] of renewedAt) {
      if (at >= limit) continue;
      settings.report(
        new TransportError(`the claim on partition ${partition} of ${settings.label} was not renewed in time`),
      );
      lose(partition);
    }
  };
  const watchdog = setInterval(expire, Math.max(50, Math.floor(settings.ttlMs / 6)));
  watchdog.unref?.();

  /** Renews every claim held, all at once: one after another, the round trips of a slow path would add up past the ttl. */
  const renew = async (kv: KV) => {
    // Stopping: a renewal now would keep a claim that is being given up alive for another ttl.
    if (stopped) return;
    const renewal = async (partition: number, revision: number) => {
      const started = performance.now();
      try {
        const next = await bounded(kv.update(claimKey(settings.scope, partition), value, revision));
        if (!held.has(partition)) return;
        held.set(partition, next);
        renewedAt.set(partition, started);
      } catch (error) {
        if (!held.has(partition)) return;
        settings.report(
          new TransportError(`lost the claim on partition ${partition} of ${settings.label}`, { cause: error }),
        );
        lose(partition);
      }
    };
    const member = async () => {
      memberRevision = await bounded(kv.put(memberKey, value));
    };
    // The member entry's failure fails the round (told), once every renewal has settled.
    const [, joined] = await Promise.allSettled([
      Promise.all([...held].map(([partition, revision]) => renewal(partition, revision))),
      member(),
    ]);
    if (joined.status === 'rejected') throw joined.reason;
  };

  /** Deletes a claim this process held; one another process holds by now (a newer revision) is left alone. */
  const release = (kv: KV, partition: number, revision: number) =>
    bounded(kv.delete(claimKey(settings.scope, partition), { previousSeq: revision })).catch((error: unknown) => {
      if (/wrong last sequence/i.test(String((error as Error)?.message ?? error))) return;
      settings.report(
        new TransportError(
          `giving up the claim on partition ${partition} of ${settings.label} failed: another process can take it after ${settings.ttlMs} ms`,
          { cause: error },
        ),
      );
    });

  /** Claims `partition` if it is free (or already this process's, unanswered): true once held. */
  const claim = async (kv: KV, partition: number) => {
    const started = performance.now();
    const revision = await bounded(kv.create(claimKey(settings.scope, partition), value)).catch((error: unknown) => {
      // "Wrong last sequence": the key exists, held by another process (or by this one, if an earlier create
      // went through unanswered). Any other failure is told: retried every round, it must not stay silent.
      if (!isKeyTaken(error)) {
        settings.report(
          new TransportError(`claiming partition ${partition} of ${settings.label} failed`, { cause: error }),
        );
      }
      return ownEntry(kv, partition);
    });
    // Undefined: held by another process (or not known to be this one's).
    if (revision === undefined) return;
    held.set(partition, revision);
    renewedAt.set(partition, started);
    target.gain(partition);
  };

  /**
   * Evens out: gives up idle partitions above the share, claims free ones up to it. Each step's calls go out
   * together (claims in rounds of as many as the share lacks, so it is never overshot): one after another, a slow
   * path's round trips would hold up the next round's renewals past the ttl.
   */
  const balance = async (kv: KV) => {
    const share = Math.ceil(settings.partitions / Math.max(1, await bounded(settings.members())));
    // Above the share: give up idle partitions, the highest first.
    const above = [...held.keys()]
      .sort((a, b) => b - a)
      .filter((partition) => target.idle(partition))
      .slice(0, Math.max(0, held.size - share))
      .map((partition) => [partition, held.get(partition) as number] as const);
    for (const [partition] of above) lose(partition);
    if (above.length > 0) {
      await Promise.allSettled([...losing]);
      await Promise.all(above.map(([partition, revision]) => release(kv, partition, revision)));
    }
    // Below it: claim free partitions, from a random one so processes starting together spread.
    const offset = Math.floor(Math.random() * settings.partitions);
    const candidates = Array.from({ length: settings.partitions }, (_, i) => (offset + i) % settings.partitions);
    let next = 0;
    while (next < candidates.length && held.size < share && !stopped) {
      const round: number[] = [];
      while (next < candidates.length && round.length < share - held.size) {
        const partition = candidates[next++] as number;
        if (!held.has(partition)) round.push(partition);
      }
      await Promise.all(round.map((partition) => claim(kv, partition)));
    }
  };

  /**
   * The revision of a claim entry that names this process, or undefined. A
   * create whose answer came too late (a loaded server, a slow network) may
   * have gone through: without this, its partition would stay unread until
   * the entry expired (`ttlMs`), every later create refused as the key exists.
   */
  const ownEntry = async (kv: KV, partition: number): Promise<number | undefined> => {
    try {
      const entry = await bounded(kv.get(claimKey(settings.scope, partition)));
      if (entry?.operation !== 'PUT' || entry.value.length !== value.length) return undefined;
      return entry.value.every((byte, i) => byte === value[i]) ? entry.revision : undefined;
    } catch {
      return undefined;
    }
  };

  /**
   * The bucket, or a told failure once it did not come within the ttl (at least 5 s: the first round creates it):
   * a round waits on nothing for ever, and a bucket that never comes says so every round.
   */
  const openBucket = () => {
    const ms = Math.max(5000, settings.ttlMs);
    return answerWithin(
      settings.bucket(),
      ms,
      () => new TransportError(`the claim bucket of ${settings.label} did not open within ${ms} ms`),
    );
  };

  const tick = async () => {
    try {
      const kv = await openBucket();
      if (stopped || !kv) return;
      await renew(kv);
      if (stopped) return;
      await balance(kv);
    } catch (error) {
      settings.report(error);
      // Without a connection the check could only time out.
      if (settings.checkBucket && settings.connected?.() !== false) {
        await bounded(settings.checkBucket()).catch((failure: unknown) => settings.report(failure));
      }
    }
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick().finally(() => {
        running = undefined;
        // At least every second: a partition given up is claimed soon, whatever the ttl.
        schedule(Math.max(100, Math.min(1000, Math.floor(settings.ttlMs / 3))));
      });
    }, ms);
  };

  return {
    start() {
      schedule(0);
    },
    held: () => [...held.keys()],
    /** Gives up every partition (after the reader gave their messages back) and leaves. */
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(watchdog);
      await running?.catch(() => undefined);
      const revisions = [...held];
      for (const [partition] of revisions) lose(partition);
      await Promise.allSettled([...losing]);
      if (revisions.length === 0 && memberRevision === undefined) return;
      if (settings.connected?.() === false) {
        // Nothing would reach the server: each call would only wait for its deadline.
        settings.report(
          new TransportError(
            `not connected: the claims of ${settings.label}${revisions.length > 0 ? ` (partitions ${revisions.map(([p]) => p).join(', ')})` : ''} are left to expire after ${settings.ttlMs} ms`,
          ),
        );
        return;
      }
      try {
        // Opened by the rounds before (something is held): at once, unless the server stopped answering.
        const kv = await bounded(settings.bucket());
        // Deleted at the server: the claims and the member entry went with it.
        if (!kv) return;
        await Promise.all([
          ...revisions.map(([partition, revision]) => release(kv, partition, revision)),
          memberRevision === undefined
            ? undefined
            : bounded(settings.remove(memberKey)).catch((error: unknown) =>
                settings.report(
                  new TransportError(`leaving the members of ${settings.label} failed: it counts until it expires`, {
                    cause: error,
                  }),
                ),
              ),
        ]);
      } catch (error) {
        settings.report(error);
      }
    },
  };
}

export type PartitionClaims = ReturnType<typeof createPartitionClaims>;
