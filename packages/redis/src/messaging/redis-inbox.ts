import { randomBytes } from 'node:crypto';
import { type Inbox, TransportError } from '@factline/core';
import { checkOptions, type OptionSpecOf, tlsOptionProblem } from '@factline/core/adapter';
import { batchedCalls } from '../batched-calls.ts';
import {
  assertRedisUrl,
  assertTlsUrl,
  closeClient,
  commandError,
  globEscape,
  openClient,
  type RedisClient,
  scanKeys,
  unansweredAtClose,
} from '../connection.ts';
import { keyPart } from '../keys.ts';
import { applicationName } from '../options.ts';
import { runScript } from '../scripts.ts';
import { serverIdentity } from '../server-checks.ts';
import type { RedisTlsOptions } from '../tls.ts';
import { type AckTarget, type AckWithMark, ackWithMarkOf } from './ack-with-mark.ts';
import { type ClaimOutcome, createClaimWaits } from './claim-waits.ts';

/** A mark call's outcome for a run, bits: marked (and acked, for a delivery acked with its mark), else fenced off. */
const MARKED = 1;
/** The run's claim was no longer its own at the mark: it ran out (marked where no other run took it meanwhile). */
const CLAIM_RAN_OUT = 2;
/** Fenced off, the partition lease found with no holder (it ran out), not another reader's. */
const LEASE_RAN_OUT = 4;

interface MarkItem {
  key: string;
  claim: string;
  value: string;
  ms: number;
  /** The delivery's stream entry, acked with the mark when the partition lease still holds its reader's token. */
  ack: AckWithMark | undefined;
}

export interface RedisInboxOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`). */
  url: string;
  /** For a `rediss://` URL: the CA, client certificate and key, as the transport's `tls` option. */
  tls?: RedisTlsOptions;
  /** Prefixes the marks: `<application>:processed:<consumer>:<message id>` (a `:` or `%` in the consumer written `%3A`, `%25`). */
  application: string;
  /** How long a mark is kept (its TTL). Default 24 h, as the seed's `EX 86400`. */
  retentionMs?: number;
  /**
   * How long a handler run's claim lasts unless renewed; the inbox renews it
   * every third of it while the handler runs. A process that dies mid-handler
   * frees its messages after it. A run that finds its message claimed by
   * another run waits up to about as long for that claim to end. At most
   * 2147483647 (a timer's limit). Default 10 s.
   */
  claimMs?: number;
  /** How long opening the connection may take, at most 2147483647. Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * Opens on a server that evicts keys when full (a `maxmemory` with a
   * `maxmemory-policy` other than `noeviction`): an evicted mark lets a
   * duplicate run again. Default false: such a server is refused at open.
   */
  allowEviction?: boolean;
  /**
   * Told what fails outside a handler run's own outcome: `connection` (the
   * connection dropped or cannot reconnect; it keeps trying), `renew` (a
   * renewal failed, or found a run's claim gone: it ran out before it was
   * renewed, and another run may apply the message too), `settle` (a failed
   * run's claim could not be deleted: its retry waits for it to expire; or a
   * run's mark failed after its handler ran: its claim is dropped, and the
   * message runs again).
   * Default: nothing is written anywhere.
   */
  onError?: (error: unknown, context: { stage: RedisInboxErrorStage }) => void;
}

/** Where a Redis inbox failure happened, as told to `onError`. */
export type RedisInboxErrorStage = 'connection' | 'renew' | 'settle';

export interface RedisInbox extends Inbox {
  /** Closes the inbox's connection. */
  close(): Promise<void>;
}

const spec: OptionSpecOf<RedisInboxOptions> = {
  url: 'non-empty-string',
  tls: tlsOptionProblem,
  application: applicationName,
  retentionMs: 'positive-integer',
  // The claims' renewal (every third of claimMs) and the connect deadline are timers: at most MAX_TIMER_MS.
  claimMs: 'timer-ms',
  connectTimeoutMs: 'timer-ms',
  allowEviction: 'boolean',
  onError: 'function',
};

/**
 * The seed's `processed:<id>` inbox made safe, for consumers without an SQL
 * database. A handler run first claims the message (`<app>:processed:<consumer>:<id>`
 * set only if absent, with a short TTL renewed while the handler runs); when
 * the handler succeeds the claim becomes the mark (kept `retentionMs`, 24 h by
 * default); when it fails the claim is deleted so a retry runs. A message whose
 * mark exists is acknowledged without running the handler. A run that finds
 * its message claimed by another run waits for that claim to end (the mark:
 * a duplicate; the claim dropped or expired, as a process that died leaves
 * it: this run claims it), for `claimMs` and a little more; a claim still
 * held then fails this try with a retryable error (the consumer reports it
 * as its inbox failing and gives the message back for a second). Effects
 * outside Redis are at least once: a process that dies after the effect and
 * before the mark lets the claim expire and the message run again. For exactly-once effects keep them in an SQL database with its inbox.
 *
 * @example
 * const inbox = await getRedisInbox({ url: 'redis://127.0.0.1:6379', application: 'shop' });
 * const consumer = createConsumer({ name: 'billing', topic: 'orders', transport, inbox, handler });
 */
export async function getRedisInbox(given: RedisInboxOptions): Promise<RedisInbox> {
  const options = checkOptions(given, spec, 'getRedisInbox', { required: ['url', 'application'], optional: false });
  assertRedisUrl(options.url, 'getRedisInbox.url');
  assertTlsUrl(options.url, options.tls, 'getRedisInbox.tls');
  const retentionMs = options.retentionMs ?? 86_400_000;
  const claimMs = options.claimMs ?? 10_000;
  const prefix = `${options.application}:processed:`;
  const report = (error: unknown, stage: RedisInboxErrorStage) => {
    try {
      options.onError?.(error, { stage });
    } catch {
      // The hook's own failure changes nothing.
    }
  };
  const client: RedisClient = await openClient(options.url, {
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    tls: options.tls,
    reconnectMinMs: 100,
    reconnectMaxMs: 5000,
    name: `factline-${options.application}-inbox-${process.pid}`,
    onError: (error) => report(error, 'connection'),
  });
  const server = await serverIdentity(client, options.url, options.connectTimeoutMs ?? 5000, {
    allowEviction: options.allowEviction ?? false,
  }).catch(async (error: unknown) => {
    await closeClient(client);
    throw error;
  });
  // The consumer as a key part (no `:`): the first `:` after it starts the message id.
  const markKey = (consumer: string, id: string) => `${prefix}${keyPart(consumer)}:${id}`;
  /** Claim values: unique per inbox (72 random bits, short: each claim travels twice per message) and per run (a counter). */
  const runs = randomBytes(9).toString('base64url');
  let runCount = 0;
  // The claims, and the marks (with their acks), of the runs of one turn of the event loop: one script call each.
  const claims = batchedCalls(async (items: { key: string; claim: string; id: string }[]) => {
    const keys = new Array<string>(items.length);
    const args = new Array<string | number>(items.length + 1);
    args[0] = claimMs;
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as { key: string; claim: string; id: string };
      keys[i] = item.key;
      args[i + 1] = item.claim;
    }
    const reply = String(
      await runScript(client, 'inboxClaim', keys, args).catch((error: unknown) => {
        // The script may have run, its reply lost: claims no run renews would turn every retry away until they
        // expire. Each is deleted while it is still its run's own (the claim values are unique).
        for (const item of items) void dropClaim(item.key, item.claim, item.id);
        throw commandError(error, `claiming ${items.length} messages in the Redis inbox`);
      }),
    );
    // The letters, then the PTTLs of the busy ones' claims.
    const [letters = '', ...ttls] = reply.split(' ');
    let busy = 0;
    return Array.from(
      letters,
      (letter): ClaimOutcome =>
        letter === 'c' ? 'claimed' : letter === 'd' ? 'done' : { heldMs: Number(ttls[busy++] ?? -1) },
    );
  });
  const waits = createClaimWaits(claimMs);
  const marks = batchedCalls(async (items: MarkItem[]) => {
    // Grouped by where their entries are acked (one partition of one reader): one lease check and one XACK each.
    const byTarget = new Map<AckTarget, number[]>();
    const plain: number[] = [];
    for (let i = 0; i < items.length; i++) {
      const target = (items[i] as MarkItem).ack?.target;
      if (!target) {
        plain.push(i);
        continue;
      }
      const group = byTarget.get(target);
      if (group) group.push(i);
      else byTarget.set(target, [i]);
    }
    const keys: string[] = [];
    const args: (string | number)[] = [byTarget.size];
    for (const [{ stream, lease, group, token }, members] of byTarget) {
      keys.push(stream, lease);
      args.push(group, token, members.length);
    }
    const results = new Array<number>(items.length);
    /** The items in the order of their marks in the call. */
    const order: number[] = [];
    let g = 0;
    for (const members of byTarget.values()) {
      for (const i of members) {
        const { key, claim, value, ms, ack } = items[i] as MarkItem;
        keys.push(key);
        args.push(claim, value, ms, (ack as AckWithMark).id);
        order.push(i);
      }
    }
    for (const i of plain) {
      const { key, claim, value, ms } = items[i] as MarkItem;
      keys.push(key);
      args.push(claim, value, ms);
      results[i] = MARKED;
      order.push(i);
    }
    const [written, lost] = (await runScript(client, 'inboxMark', keys, args).catch((error: unknown) => {
      throw commandError(error, `marking ${items.length} messages in the Redis inbox`);
    })) as [number[], number[]];
    for (const members of byTarget.values()) {
      // 1: marked and acked; 0: fenced off, another reader holds the lease; -2: fenced off, none does.
      const reply = Number(written[g++]);
      const outcome = reply === 1 ? MARKED : reply === -2 ? LEASE_RAN_OUT : 0;
      for (const i of members) results[i] = outcome;
    }
    for (const position of lost) {
      const i = order[Number(position) - 1] as number;
      results[i] = (results[i] as number) | CLAIM_RAN_OUT;
    }
    return results;
  });
  type Run = { claim: string; consumer: string; id: string; lost?: boolean };
  /** The handler runs in progress by mark key, their claims renewed together every third of `claimMs`. */
  const running = new Map<string, Run>();
  /** Tells once per run that its claim ran out: found by a renewal, or at the mark when no renewal saw it. */
  const claimRanOut = (run: Run) => {
    if (run.lost) return;
    run.lost = true;
    report(
      new TransportError(
        `the claim of message ${run.id} by consumer '${run.consumer}' ran out before it was renewed (claimMs ${claimMs}): another run may apply the message too`,
      ),
      'renew',
    );
  };
  let renewals: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  const startRenewals = () => {
    if (closed) return;
    renewals ??= setInterval(
      () => {
        if (running.size === 0) {
          clearInterval(renewals);
          renewals = undefined;
          return;
        }
        const keys = [...running.keys()];
        const inFlight = [...running.values()];
        runScript(client, 'inboxRenew', keys, [claimMs, ...inFlight.map((run) => run.claim)]).then(
          (lost) => {
            for (const at of lost as number[]) {
              const run = inFlight[Number(at) - 1];
              // A run that ended meanwhile turned its claim into a mark (or dropped it): nothing was lost.
              if (run === undefined || running.get(keys[Number(at) - 1] as string) !== run) continue;
              claimRanOut(run);
            }
          },
          (error: unknown) => report(error, 'renew'),
        );
      },
      Math.max(10, Math.floor(claimMs / 3)),
    );
    renewals.unref?.();
  };
  /**
   * Deletes a run's claim while it is still the run's own, so that a retry runs; a failure is told (`settle`).
   * Resolves to what became of the claim.
   */
  const dropClaim = (key: string, claim: string, id: string) =>
    runScript(client, 'inboxSettle', [key], [claim, '', 0]).then(
      (reply) => (Number(reply) === 1 ? 'its claim was dropped' : 'its claim was no longer its own'),
      (error: unknown) => {
        report(commandError(error, `dropping the claim of ${id} in the Redis inbox`), 'settle');
        return `its claim stays until it expires, claimMs ${claimMs}`;
      },
    );
  /** A mark kept until `at + retention`; one already past it is not written. */
  const markFor = (at: Date) => ({ value: `d:${at.getTime()}`, ttl: at.getTime() + retentionMs - Date.now() });

  return {
    async has(consumer, id) {
      const value: unknown = await client.sendCommand(['GET', markKey(consumer, id)]).catch((error: unknown) => {
        throw commandError(error, `reading the mark of ${id} in the Redis inbox`);
      });
      return typeof value === 'string' && value.startsWith('d:');
    },

    async add(consumer, id, at) {
      const { value, ttl } = markFor(at);
      if (ttl <= 0) return;
      await client
        .sendCommand(['SET', markKey(consumer, id), value, 'PX', String(Math.ceil(ttl))])
        .catch((error: unknown) => {
          throw commandError(error, `marking ${id} in the Redis inbox`);
        });
    },

    async prune(before, consumer) {
      // Marks expire by their TTL `retentionMs` after their time: none older than that is left to delete, and the
      // keyspace is not scanned (the consumer's default retention, 7 days, is longer than the marks' 24 h).
      if (before.getTime() <= Date.now() - retentionMs) return;
      // Only this consumer's marks.
      for await (const found of scanKeys(client, `${globEscape(prefix + keyPart(consumer))}:*`, 500)) {
        await runScript(client, 'inboxPrune', found, [before.getTime()]);
      }
    },

    async applyOnce(consumer, id, at, work, delivery, queued) {
      const key = markKey(consumer, id);
      const claim = `c:${runs}.${++runCount}`;
      const item = { key, claim, id };
      let outcome = await claims.call(item);
      if (typeof outcome === 'object') {
        // Another run holds it: given back, the message would come again through the transport, each hand-out
        // counted toward maxDeliveries, until that claim ended (claimMs after a process died). The run waits here
        // and keeps its lane's place (not `queued`: that gives the place up, and the run may yet run its handler).
        outcome = await waits.waitOut(() => claims.call(item), outcome.heldMs, { id, consumer });
      }
      if (outcome === 'done') return false;
      const run: Run = { claim, consumer, id };
      running.set(key, run);
      startRenewals();
      // Only this run's own entry goes: a run of the same message here after this one's claim ran out has its own.
      const done = () => {
        if (running.get(key) === run) running.delete(key);
      };
      try {
        await work(undefined);
      } catch (error) {
        done();
        // The claim goes, so that a retry runs; failing to delete it only delays the retry to its expiry.
        await dropClaim(key, claim, id);
        throw error;
      }
      done();
      const { value, ttl } = markFor(at);
      const ack = ackWithMarkOf(delivery);
      const target = ack && ack.target.server === server && ack.current() ? ack : undefined;
      // Only the mark (and the ack) is left: another key's run may start meanwhile.
      queued?.();
      let written: number;
      try {
        written = await marks.call({ key, claim, value, ms: Math.max(1, Math.ceil(ttl)), ack: target });
      } catch (error) {
        // Unmarked, the message runs again: at once, not once the claim expired (every try until then turned away).
        const claimNow = await dropClaim(key, claim, id);
        report(
          new TransportError(
            `the mark of message ${id} by consumer '${consumer}' failed after its handler ran, so the message may run again (${claimNow}): ${error instanceof Error ? error.message : String(error)}`,
            { cause: error },
          ),
          'settle',
        );
        throw error;
      }
      // The claim ran out unseen (an event loop blocked past claimMs, renewals that failed): marked unless another
      // run took the message meanwhile, and told either way.
      if (written & CLAIM_RAN_OUT) claimRanOut(run);
      if (target) {
        if (written & MARKED) target.acked();
        else target.fenced(written & LEASE_RAN_OUT ? 'none' : 'another');
      }
      return true;
    },

    async close() {
      closed = true;
      waits.close();
      clearInterval(renewals);
      renewals = undefined;
      if (!(await closeClient(client))) report(unansweredAtClose(options.url, 'inbox'), 'connection');
    },
  };
}
