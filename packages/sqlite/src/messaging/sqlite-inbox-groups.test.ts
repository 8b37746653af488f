import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createConsumer, createMessage, getInMemoryTransport } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { getSqliteInbox, openSqliteDatabase } from '../index.ts';
import { WRITE_PAUSE_MS } from '../write-share.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-inbox-groups-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('applyOnce tells a run queued for a group commit, and never a run committed alone', async () => {
  const db = openSqliteDatabase(join(dir, 'queued.db'));
  try {
    for (const groupCommit of [true, false]) {
      const inbox = getSqliteInbox({ database: db, groupCommit });
      const applyOnce = inbox.applyOnce as NonNullable<typeof inbox.applyOnce>;
      let queued = 0;
      const applied = await applyOnce(
        `q-${groupCommit}`,
        'm1',
        new Date(),
        () => undefined,
        undefined,
        () => {
          queued += 1;
        },
      );
      assert.equal(applied, true);
      assert.equal(queued, groupCommit ? 1 : 0, `groupCommit ${groupCommit}`);
    }
  } finally {
    db.close();
  }
});

test('a lane waiting for a group commit lets other keys join it: one commit covers more runs than lanes, keys stay in order', async () => {
  const db = openSqliteDatabase(join(dir, 'lanes.db'));
  db.exec('CREATE TABLE seen (key TEXT NOT NULL, n INTEGER NOT NULL)');
  const transport = getInMemoryTransport();
  // Handlers run back to back, with no microtask between them, only inside one group's transaction.
  let group = 0;
  let open = false;
  const groupOf = () => {
    if (!open) {
      open = true;
      group += 1;
      queueMicrotask(() => {
        open = false;
      });
    }
    return group;
  };
  const sizes = new Map<number, number>();
  const order = new Map<string, number[]>();
  let handled = 0;
  const consumer = createConsumer<Database>({
    name: 'groups',
    topic: 'items',
    transport,
    inbox: getSqliteInbox({ database: db }),
    concurrency: 2,
    handler(message, tx) {
      const { n } = message.data as { n: number };
      const at = groupOf();
      sizes.set(at, (sizes.get(at) ?? 0) + 1);
      tx.prepare('INSERT INTO seen (key, n) VALUES (?, ?)').run(message.key, n);
      order.set(message.key, [...(order.get(message.key) ?? []), n]);
      handled += 1;
    },
  });
  try {
    await consumer.start();
    const messages = Array.from({ length: 24 }, (_, n) =>
      createMessage({ type: 'Item', key: `k${n % 6}`, data: { n } }),
    );
    await transport.publish('items', messages);
    await waitUntil(() => handled === 24, 'every message handled');
    assert.ok(Math.max(...sizes.values()) > 2, `a group held more runs than the 2 lanes: ${[...sizes.values()]}`);
    for (const [key, ns] of order)
      assert.deepEqual(
        ns,
        [...ns].sort((a, b) => a - b),
        `${key} in order`,
      );
    const rows = db.prepare('SELECT count(*) AS n FROM seen').get() as { n: number };
    assert.equal(rows.n, 24, 'each effect once');
    assert.equal(consumer.stats().handled, 24);
  } finally {
    await consumer.stop();
    await transport.close();
    db.close();
  }
});

test('a consumer with a short inbox retention prunes its own marks only, not those of another consumer of the inbox', async () => {
  const db = openSqliteDatabase(join(dir, 'retention.db'));
  const transport = getInMemoryTransport();
  const inbox = getSqliteInbox({ database: db });
  const handled: string[] = [];
  const billing = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    inbox,
    pollMs: 5,
    handler: (message) => {
      handled.push(message.id);
    },
  });
  let clock = Date.now();
  const audit = createConsumer({
    name: 'audit',
    topic: 'audit-log',
    transport,
    inbox,
    pollMs: 5,
    inboxRetentionMs: 60_000,
    now: () => clock,
    handler: () => undefined,
  });
  try {
    await billing.start();
    const order = createMessage({ type: 'OrderPlaced', key: 'o-1', data: {} });
    await transport.publish('orders', [order]);
    await waitUntil(() => billing.stats().handled === 1, 'billing applied the order');
    // Two minutes on, audit's first fetch prunes what is older than its one minute.
    clock += 120_000;
    await audit.start();
    await transport.publish('audit-log', [createMessage({ type: 'Logged', data: {} })]);
    await waitUntil(() => audit.stats().handled === 1, 'audit ran, and pruned');
    const marks = db.prepare('SELECT consumer FROM factline_inbox ORDER BY consumer').all() as { consumer: string }[];
    assert.deepEqual(
      marks.map((row) => row.consumer),
      ['audit', 'billing'],
    );
    // The order comes again (a relay publishing it twice): billing still knows it.
    await transport.publish('orders', [order]);
    await waitUntil(() => billing.stats().duplicates === 1, 'billing dropped the duplicate');
    assert.deepEqual(handled, [order.id]);
  } finally {
    await billing.stop();
    await audit.stop();
    await transport.close();
    db.close();
  }
});

test('runs holding the write lock back to back leave it free for a pause every maxWriteHoldMs, with or without group commit', async () => {
  const db = openSqliteDatabase(join(dir, 'share.db'));
  const maxWriteHoldMs = 100;
  const RUN_MS = 20;
  const slept = new Int32Array(new SharedArrayBuffer(4));
  try {
    for (const groupCommit of [true, false]) {
      const applyOnce = getSqliteInbox({ database: db, groupCommit, maxWriteHoldMs }).applyOnce as NonNullable<
        ReturnType<typeof getSqliteInbox>['applyOnce']
      >;
      const runs: { start: number; end: number }[] = [];
      const run = () => {
        const start = performance.now();
        // A run that holds its transaction (a synchronous wait: no CPU spent).
        Atomics.wait(slept, 0, 0, RUN_MS);
        runs.push({ start, end: performance.now() });
      };
      const apply = (n: number) => applyOnce(`share-${groupCommit}`, `m${n}`, new Date(), run);
      // With group commit, 30 runs arriving together (one group, were it not cut); without, one after another.
      const applied: boolean[] = [];
      if (groupCommit) applied.push(...(await Promise.all(Array.from({ length: 30 }, (_, n) => apply(n)))));
      else for (let n = 0; n < 30; n += 1) applied.push(await apply(n));
      assert.deepEqual(applied, Array(30).fill(true), 'every run applied once');
      // Stretches of runs back to back, split where the lock was left free for a pause.
      const stretches: { start: number; end: number }[][] = [];
      for (const [i, r] of runs.entries()) {
        const before = runs[i - 1];
        if (!before || r.start - before.end >= WRITE_PAUSE_MS) stretches.push([r]);
        else stretches.at(-1)?.push(r);
      }
      assert.ok(stretches.length >= 4, `groupCommit ${groupCommit}: paused, ${stretches.length} stretches`);
      for (const stretch of stretches) {
        const first = stretch[0] as { start: number };
        const last = stretch.at(-1) as { start: number };
        assert.ok(
          last.start - first.start < maxWriteHoldMs,
          `groupCommit ${groupCommit}: no run began once the lock was held ${maxWriteHoldMs} ms back to back (${stretch.length} runs)`,
        );
      }
    }
  } finally {
    db.close();
  }
});
