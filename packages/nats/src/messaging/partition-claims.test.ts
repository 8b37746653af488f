import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KV } from '@nats-io/kv';
import { createPartitionClaims } from './partition-claims.ts';

/**
 * A key-value bucket in memory with the semantics the claims rely on (create
 * only where absent, update only at the current revision), whose creates can
 * be made to go through at once and answer `answerAfterMs` later: a loaded
 * server whose answer comes after the caller's deadline. With `roundTripMs`,
 * every call answers that late (a server far away), its write made at once.
 */
function bucket(answerAfterMs = 0, roundTripMs = 0) {
  const entries = new Map<string, { value: Uint8Array; revision: number }>();
  let revision = 0;
  /** While set, every create fails with it before reaching the entries (a server that cannot take the write). */
  let failCreates: Error | undefined;
  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const kv = {
    async create(key: string, value: Uint8Array) {
      if (failCreates) throw failCreates;
      // The server's answer to a create where the key exists: "wrong last sequence", API code 10071.
      if (entries.has(key)) throw Object.assign(new Error('wrong last sequence: 1'), { code: 10071 });
      entries.set(key, { value, revision: ++revision });
      const created = revision;
      await wait(Math.max(answerAfterMs, roundTripMs));
      return created;
    },
    async update(key: string, value: Uint8Array, last: number) {
      if (entries.get(key)?.revision !== last) throw new Error('wrong last sequence');
      entries.set(key, { value, revision: ++revision });
      const updated = revision;
      await wait(roundTripMs);
      return updated;
    },
    async put(key: string, value: Uint8Array) {
      entries.set(key, { value, revision: ++revision });
      const put = revision;
      await wait(roundTripMs);
      return put;
    },
    async get(key: string) {
      const entry = entries.get(key);
      await wait(roundTripMs);
      return entry ? { ...entry, operation: 'PUT' as const } : null;
    },
    async delete(key: string) {
      entries.delete(key);
      await wait(roundTripMs);
    },
  };
  return {
    kv: kv as unknown as KV,
    entries,
    failCreatesWith(error: Error | undefined) {
      failCreates = error;
    },
  };
}

async function until(condition: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function claimsOn(
  kv: KV,
  ttlMs: number,
  partitions = 2,
  bucket: () => Promise<KV> = async () => kv,
  members: () => Promise<number> = async () => 1,
) {
  const gained: number[] = [];
  const lost: number[] = [];
  const errors: unknown[] = [];
  const claims = createPartitionClaims(
    {
      bucket,
      scope: 't.g',
      label: 't/g',
      members,
      remove: async () => undefined,
      partitions,
      ttlMs,
      report: (error) => errors.push(error),
    },
    {
      gain: (p) => gained.push(p),
      lose: async (p) => {
        lost.push(p);
      },
      idle: () => true,
    },
  );
  return { claims, gained, lost, errors };
}

describe('partition claims', () => {
  it('a claim whose create went through but answered after the deadline is taken as this process’s, at once', async () => {
    // ttl 3000 ms: a call's deadline is 1000 ms; the creates answer after 1500 ms.
    const { kv, entries } = bucket(1500);
    const { claims, gained } = claimsOn(kv, 3000, 1);
    claims.start();
    try {
      // Without reading the entry back, every later create is refused (the key exists) and the partition stays
      // unread until the entry expires (the ttl); here it is held in the first round, about 1 s in.
      await until(() => claims.held().length === 1, 'the partition held before its entry could expire', 2900);
      assert.deepEqual(gained, [0]);
      assert.deepEqual(
        [...entries.keys()].filter((key) => key.startsWith('claim.')),
        ['claim.t.g.0'],
      );
    } finally {
      await claims.stop();
    }
    assert.deepEqual(
      [...entries.keys()].filter((key) => key.startsWith('claim.')),
      [],
      'given back at stop',
    );
  });

  it('a claim no longer renewed ends after two thirds of the ttl, with the wall clock stepped back a minute', async () => {
    const { kv } = bucket();
    // Once the partition is held, the bucket stops answering: no renewal runs (the watchdog alone ends the claim).
    let stall: (() => void) | undefined;
    const stalled = new Promise<KV>((resolve) => {
      stall = () => resolve(kv);
    });
    let answering = true;
    const { claims, errors } = claimsOn(kv, 600, 1, () => (answering ? Promise.resolve(kv) : stalled));
    const realNow = Date.now;
    claims.start();
    try {
      await until(() => claims.held().length === 1, 'the partition held');
      answering = false;
      // As NTP stepping the clock back: a claim timed on it would live a minute more here.
      Date.now = () => realNow() - 60_000;
      await until(() => claims.held().length === 0, 'the claim ended here', 2000);
      assert.match(String(errors.at(-1)), /the claim on partition 0 of t\/g was not renewed in time/);
    } finally {
      Date.now = realNow;
      stall?.();
      await claims.stop();
    }
  });

  it('a process of 24 partitions with answers 250 ms late claims them all and loses none', async () => {
    // ttl 3000 ms: a claim not renewed for 2000 ms ends here. One after another, the 24 creates (and each round's
    // 24 renewals) would take 6 s: the first claims would end before the round that renews them.
    const { kv, entries } = bucket(0, 250);
    const { claims, gained, lost, errors } = claimsOn(kv, 3000, 24);
    claims.start();
    try {
      await until(() => claims.held().length === 24, 'the 24 partitions held', 2500);
      // Rounds run every second: two more renew every claim twice.
      const renewedFrom = Math.min(...[...entries.values()].map((entry) => entry.revision));
      await new Promise((resolve) => setTimeout(resolve, 2500));
      assert.deepEqual(lost, [], 'no claim lost');
      assert.deepEqual(errors, []);
      assert.equal(claims.held().length, 24);
      assert.equal(gained.length, 24, 'each partition gained once');
      const claimed = [...entries].filter(([key]) => key.startsWith('claim.'));
      assert.equal(claimed.length, 24);
      for (const [key, entry] of claimed) assert.ok(entry.revision > renewedFrom, `${key} renewed`);
    } finally {
      await claims.stop();
    }
    assert.deepEqual(
      [...entries.keys()].filter((key) => key.startsWith('claim.')),
      [],
      'given back at stop',
    );
  });

  it('a process of 24 partitions with answers 250 ms late gives half up for a second member and keeps the rest', async () => {
    const { kv, entries } = bucket(0, 250);
    let members = 1;
    const { claims, lost, errors } = claimsOn(kv, 3000, 24, undefined, async () => members);
    claims.start();
    try {
      await until(() => claims.held().length === 24, 'the 24 partitions held', 2500);
      members = 2;
      // One after another, the 12 give-ups would take 3 s: the claims kept would end before the next renewal.
      await until(() => claims.held().length === 12, 'half given up', 2500);
      const kept = claims.held();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.deepEqual(errors, []);
      assert.deepEqual(claims.held(), kept, 'the partitions kept still held');
      assert.equal(lost.length, 12, 'only the 12 given up');
      assert.ok(
        lost.every((p) => !kept.includes(p)),
        'none of the kept lost',
      );
      assert.equal([...entries.keys()].filter((key) => key.startsWith('claim.')).length, 12, 'the given up deleted');
    } finally {
      await claims.stop();
    }
  });

  it('a claim entry naming another process is left to it', async () => {
    const { kv, entries } = bucket();
    entries.set('claim.t.g.0', { value: new TextEncoder().encode('other-process'), revision: 1 });
    const { claims, gained, errors } = claimsOn(kv, 3000);
    claims.start();
    try {
      await until(() => claims.held().length === 1, 'the free partition held');
      // A few rounds more: partition 0 is never taken.
      await new Promise((resolve) => setTimeout(resolve, 1200));
      assert.deepEqual(claims.held(), [1]);
      assert.deepEqual(gained, [1]);
      assert.deepEqual(errors, [], 'a partition another process holds is no failure');
    } finally {
      await claims.stop();
    }
    assert.equal(new TextDecoder().decode(entries.get('claim.t.g.0')?.value), 'other-process');
  });

  it('a create that fails for another reason than a claim being there is told, every round, and retried', async () => {
    const { kv, failCreatesWith } = bucket();
    failCreatesWith(Object.assign(new Error('insufficient resources'), { code: 10023 }));
    const { claims, errors } = claimsOn(kv, 600, 1);
    claims.start();
    try {
      // Rounds run every 200 ms here (a third of the ttl): two told failures are two rounds.
      await until(() => errors.length >= 2, 'the failed claims told');
      assert.deepEqual(claims.held(), []);
      for (const error of errors) {
        assert.match(String(error), /claiming partition 0 of t\/g failed/);
        assert.match(String((error as Error).cause), /insufficient resources/);
      }
      failCreatesWith(undefined);
      await until(() => claims.held().length === 1, 'the partition claimed once the creates go through');
    } finally {
      await claims.stop();
    }
  });

  it('a bucket that does not open is told each round, not waited on for ever', async () => {
    const { kv } = bucket();
    let opens = false;
    const never = new Promise<KV>(() => undefined);
    const { claims, errors } = claimsOn(kv, 300, 1, () => (opens ? Promise.resolve(kv) : never));
    claims.start();
    try {
      // The wait is bounded by the ttl, at least 5 s.
      await until(() => errors.length >= 1, 'the bucket that did not open told', 7000);
      assert.match(String(errors[0]), /the claim bucket of t\/g did not open within 5000 ms/);
      assert.deepEqual(claims.held(), []);
      opens = true;
      await until(() => claims.held().length === 1, 'the partition claimed once the bucket opens', 7000);
    } finally {
      await claims.stop();
    }
  });
});
