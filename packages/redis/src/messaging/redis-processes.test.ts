import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createMessage, type Message } from '@factline/core';
import { spawnTestChild, type TestChild, waitUntil } from '@factline/core/testing';
import { getSqliteInbox, openSqliteDatabase } from '@factline/sqlite';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

const childScript = new URL('./fixtures/consumer-child.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'factline-redis-processes-'));
const created: RedisTransport[] = [];
const children: TestChild[] = [];
const { skip, application, client } = await sharedRedis('kill', async () => {
  for (const child of children) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited.catch(() => undefined)));
  await Promise.all(created.map((t) => t.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** `keys` keys, `perKey` messages each, interleaved: n counts up per key. */
const messages = (keys: number, perKey: number): Message[] => {
  const out: Message[] = [];
  for (let n = 0; n < perKey; n++) {
    for (let k = 0; k < keys; k++) out.push(createMessage({ type: 'Counted', key: `key-${k}`, data: { n } }));
  }
  return out;
};

/**
 * The children's SQLite file `name` (its inbox table made here, once, and the effects table) and a transport
 * of `partitions` partitions with the group declared.
 */
async function setUp(name: string, topic: string, group: string, partitions: number) {
  const path = join(dir, name);
  const db = openSqliteDatabase(path);
  getSqliteInbox({ database: db });
  db.exec(
    'CREATE TABLE effects (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT, key TEXT, n INTEGER, pid INTEGER)',
  );
  const transport = await getRedisTransport({ url: redisUrl, application, partitions });
  created.push(transport);
  await transport.declareSubscription(topic, group);
  return { path, db, transport };
}

describe('redis: consumer processes of one group', { skip }, () => {
  it('three processes, one SIGKILLed while it holds pending entries: the others claim them; every message applied once, per-key order held', async () => {
    const partitions = 6;
    const { path, db, transport } = await setUp('kill.db', 'counts', 'counter', partitions);
    const start = () => {
      const child = spawnTestChild(childScript, [
        redisUrl,
        application,
        'counts',
        'counter',
        path,
        String(partitions),
        '3',
      ]);
      children.push(child);
      return child;
    };
    const started = [start(), start(), start()];
    const failed = Promise.race(started.map((c) => c.exited.then(() => assert.fail('a consumer process ended'))));
    failed.catch(() => undefined);
    await Promise.race([
      failed,
      waitUntil(() => started.every((c) => c.stdout().includes('ready')), 'three consumers ready', 60_000),
    ]);

    const published = messages(24, 20);
    for (let i = 0; i < published.length; i += 60) await transport.publish('counts', published.slice(i, i + 60));
    const applied = db.prepare<[], { n: number }>('SELECT count(DISTINCT message_id) AS n FROM effects');
    await waitUntil(() => (applied.get()?.n ?? 0) >= 60, 'a first part applied', 60_000);

    const pendingOf = async (pid: number | undefined) => {
      let count = 0;
      for (let p = 0; p < partitions; p++) {
        const summary = (await client.sendCommand(['XPENDING', transport.keys.stream('counts', p), 'counter'])) as [
          unknown,
          unknown,
          unknown,
          [string, string][] | null,
        ];
        for (const [name, n] of summary[3] ?? []) if (String(name).includes(`-${pid}-`)) count += Number(n);
      }
      return count;
    };
    // The victim: a process frozen (SIGSTOP) while it holds entries read but not acknowledged. One that holds
    // none at that moment (its partitions drained, between two reads) is let go on and another tried.
    let victim: TestChild | undefined;
    let heldAtKill = 0;
    const choosing = Date.now() + 30_000;
    while (!victim) {
      if (Date.now() > choosing) assert.fail('no consumer process held pending entries within 30 s');
      for (const candidate of started) {
        candidate.child.kill('SIGSTOP');
        heldAtKill = await pendingOf(candidate.child.pid);
        if (heldAtKill > 0) {
          victim = candidate;
          break;
        }
        candidate.child.kill('SIGCONT');
      }
      if (!victim) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    victim.child.kill('SIGKILL');
    await victim.exited;
    const victimPid = victim.child.pid;
    const appliedAtKill = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM effects').get()?.n ?? 0;

    await waitUntil(() => (applied.get()?.n ?? 0) >= published.length, 'every message applied', 90_000);
    const rows = db
      .prepare<[], { message_id: string; key: string; n: number; pid: number }>(
        'SELECT message_id, key, n, pid FROM effects ORDER BY seq',
      )
      .all();
    assert.equal(rows.length, published.length, 'each message applied once (the inbox turned duplicates away)');
    for (let k = 0; k < 24; k++) {
      assert.deepEqual(
        rows.filter((r) => r.key === `key-${k}`).map((r) => r.n),
        Array.from({ length: 20 }, (_, n) => n),
        `key-${k} applied in publish order`,
      );
    }
    const later = rows.slice(appliedAtKill);
    assert.ok(later.length > 0 && later.every((r) => r.pid !== victimPid), 'the survivors applied the rest');
    // Nothing is left pending for the group: what the victim held was claimed and acknowledged.
    await waitUntil(
      async () => {
        const backlog = await transport.backlog?.('counts', 'counter');
        return backlog?.messages === 0;
      },
      'the group to have nothing pending',
      30_000,
    );
    assert.equal(await pendingOf(victimPid), 0, "the victim's pending entries were claimed by the others");
    for (const child of started) if (child !== victim) child.child.kill('SIGTERM');
    await Promise.all(started.map((c) => c.exited));
    db.close();
  });
});

describe('redis: consumer processes joining and leaving while messages flow', { skip }, () => {
  it('partitions move to the fair share and back as processes come and go: every message applied once, per-key order held', async () => {
    const partitions = 6;
    const { path, db, transport } = await setUp('moves.db', 'moves', 'mover', partitions);
    // Short rounds (every trimIntervalMs) and blocking reads longer than them: partitions move while reads wait.
    const env = { FACTLINE_TEST_REDIS_OPTIONS: JSON.stringify({ leaseMs: 3000, blockMs: 2000, trimIntervalMs: 150 }) };
    const start = () => {
      const child = spawnTestChild(
        childScript,
        [redisUrl, application, 'moves', 'mover', path, String(partitions), '1'],
        env,
      );
      children.push(child);
      return child;
    };
    const ready = (child: TestChild) =>
      waitUntil(() => child.stdout().includes('ready'), 'a consumer process ready', 60_000);
    const leave = async (child: TestChild) => {
      child.child.kill('SIGTERM');
      await waitUntil(
        () => child.child.exitCode !== null || child.child.signalCode !== null,
        'a process sent SIGTERM to stop',
        20_000,
      );
      assert.equal(await child.exited, 0, 'a process sent SIGTERM stops and exits 0');
    };

    // Messages flow all along, in bursts of rounds (one message per key each), while processes come and go.
    const keys = 24;
    const applied = db.prepare<[], { n: number }>('SELECT count(DISTINCT message_id) AS n FROM effects');
    let rounds = 0;
    let moving = true;
    const publishing = (async () => {
      // Bounded: at most 1,000 rounds, however long the moves take.
      while ((moving || rounds < 20) && rounds < 1000) {
        // Keys in a random order: the first stream a burst reaches (the one a waiting read is served from) varies.
        const round = Array.from({ length: keys }, (_, k) =>
          createMessage({ type: 'Counted', key: `key-${k}`, data: { n: rounds } }),
        ).sort(() => Math.random() - 0.5);
        await transport.publish('moves', round);
        rounds += 1;
        // Bursts and quiet spells: in a quiet one the readers' blocking reads wait, as partitions move.
        await new Promise((resolve) => setTimeout(resolve, rounds % 4 === 0 ? 400 : 20));
      }
    })();
    // A publish failing while the moves are awaited is thrown where the publishing is awaited, not unhandled.
    publishing.catch(() => undefined);
    try {
      const a = start();
      await ready(a);
      const b = start();
      await ready(b);
      const c = start();
      await ready(c);
      await leave(a);
      const d = start();
      await ready(d);
      await leave(b);
      moving = false;
      await publishing;
      await waitUntil(() => (applied.get()?.n ?? 0) >= rounds * keys, 'every message applied', 60_000);
      await Promise.all([c, d].map(leave));

      const rows = db
        .prepare<[], { message_id: string; key: string; n: number; pid: number }>(
          'SELECT message_id, key, n, pid FROM effects ORDER BY seq',
        )
        .all();
      assert.equal(rows.length, rounds * keys, 'each message applied once');
      for (let k = 0; k < keys; k++) {
        assert.deepEqual(
          rows.filter((r) => r.key === `key-${k}`).map((r) => r.n),
          Array.from({ length: rounds }, (_, n) => n),
          `key-${k} applied in publish order`,
        );
      }
      assert.ok(new Set(rows.map((r) => r.pid)).size >= 3, 'the work moved between processes');
    } finally {
      moving = false;
      await publishing.catch(() => undefined);
      db.close();
    }
  });
});
