import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createConsumer, createMessage, defineProjection } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import {
  getSqliteDeadLetterStore,
  getSqliteEventStore,
  getSqliteInbox,
  getSqliteTransport,
  startSqliteProjections,
} from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import { deadLetterRecord } from './fixtures/dead-letter.ts';
import { runFactline } from './fixtures/run-factline.ts';

/** How long each batch's transaction holds the file's write lock: a handler with a lot to write. */
const BATCH_HOLD_MS = 1000;
const BATCH_SIZE = 25;
/** 40 batches: 40 s of catch-up back to back, far beyond the CLI's 5 s busy timeout (the test stops it long before). */
const EVENTS = 40 * BATCH_SIZE;

let dir = '';
let db = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'factline-cli-catch-up-'));
  db = join(dir, 'backlog.db');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const factline = (...args: string[]) => runFactline(args, { db, signal: AbortSignal.timeout(30_000) });

describe('factline projections pause while a runner catches up on the same SQLite file', () => {
  it('each pause is written within the CLI busy timeout, and the runner holds before the backlog is done', async () => {
    const store = getSqliteEventStore({ path: db });
    for (let i = 0; i < EVENTS / 200; i += 1) {
      const events = Array.from({ length: 200 }, (_, n) => ({ type: 'Counted', data: { n } }));
      await store.append(`counter-${i}`, events, { expectedVersion: 'no-stream' });
    }
    const head = await store.headPosition();
    const slept = new Int32Array(new SharedArrayBuffer(4));
    const projection = defineProjection<Database>({
      name: 'slow_count',
      handles: ['Counted'],
      init: (tx) => {
        tx.exec('CREATE TABLE IF NOT EXISTS slow_count (position INTEGER PRIMARY KEY)');
      },
      handle: (events, tx) => {
        const insert = tx.prepare('INSERT INTO slow_count (position) VALUES (?)');
        for (const event of events) insert.run(event.position);
        // The rest of a long batch's work, inside its transaction (a synchronous wait: no CPU spent).
        Atomics.wait(slept, 0, 0, BATCH_HOLD_MS);
      },
    });
    const runner = await startSqliteProjections(store, [projection], { batchSize: BATCH_SIZE });
    try {
      // Twice: a pause that got in by luck, between two batches, does not pass the test.
      for (let round = 1; round <= 2; round += 1) {
        const from = runner.status('slow_count').checkpoint;
        await waitUntil(() => runner.status('slow_count').checkpoint > from, `a batch committed (round ${round})`);
        const paused = await factline('projections', 'pause', 'slow_count');
        assert.equal(paused.code, 0, paused.stderr);
        assert.equal(paused.stdout, 'slow_count paused\n');
        await waitUntil(() => runner.status('slow_count').state === 'paused', 'the runner holds', 5_000);
        const { checkpoint } = runner.status('slow_count');
        assert.ok(checkpoint < head, `paused at ${checkpoint} of ${head}: while catching up`);
        const resumed = await factline('projections', 'resume', 'slow_count');
        assert.equal(resumed.code, 0, resumed.stderr);
      }
    } finally {
      await runner.stop();
      await store.close();
    }
  });
});

/** How long each handler run holds its group's transaction: a handler with a lot to write. */
const RUN_HOLD_MS = 25;
/** 1,600 runs of 25 ms: 40 s of catch-up, far beyond the CLI's 5 s busy timeout (the test stops it long before). */
const MESSAGES = 1600;

describe('factline dlq redrive while a consumer with the SQLite inbox catches up on the same SQLite file', () => {
  it('each redrive is written within the CLI busy timeout, while the backlog is not done', async () => {
    const queueDb = join(dir, 'queue.db');
    const transport = getSqliteTransport({ path: queueDb });
    const database = transport.database;
    database.exec('CREATE TABLE IF NOT EXISTS billed (message_id TEXT PRIMARY KEY)');
    const deadLetters = getSqliteDeadLetterStore({ database });
    await deadLetters.add(deadLetterRecord('redrive-1'));
    await deadLetters.add(deadLetterRecord('redrive-2'));
    await transport.declareSubscription('orders', 'billing');
    const messages = Array.from({ length: MESSAGES }, (_, n) =>
      createMessage({ type: 'OrderPlaced', key: `order-${n}`, data: { n } }),
    );
    for (let i = 0; i < MESSAGES; i += 200) await transport.publish('orders', messages.slice(i, i + 200));
    const billed = database.prepare<[], { n: number }>('SELECT count(*) AS n FROM billed');
    const handled = () => billed.get()?.n ?? 0;
    const slept = new Int32Array(new SharedArrayBuffer(4));
    const consumer = createConsumer<Database>({
      name: 'billing',
      topic: 'orders',
      transport,
      inbox: getSqliteInbox({ database }),
      deadLetters,
      // The stop gives back what is still held after 1 s rather than working through it.
      drainTimeoutMs: 1000,
      handler: (message, tx) => {
        tx.prepare('INSERT INTO billed (message_id) VALUES (?)').run(message.id);
        // The rest of a long run's work, inside its group's transaction (a synchronous wait: no CPU spent).
        Atomics.wait(slept, 0, 0, RUN_HOLD_MS);
      },
    });
    await consumer.start();
    try {
      // Twice: a redrive that got in by luck, between two groups, does not pass the test.
      for (let round = 1; round <= 2; round += 1) {
        const from = handled();
        await waitUntil(() => handled() > from, `a group committed (round ${round})`, 20_000);
        const redriven = await runFactline(['dlq', 'redrive', `redrive-${round}`, '--yes'], {
          db: queueDb,
          signal: AbortSignal.timeout(30_000),
        });
        assert.equal(redriven.code, 0, `round ${round}: ${redriven.stderr}`);
        assert.equal(redriven.stdout, '1 dead letter redriven\n');
        assert.ok(handled() < MESSAGES, `redriven at ${handled()} of ${MESSAGES} handled: while catching up`);
      }
    } finally {
      await consumer.stop();
      await transport.close();
    }
  });
});
