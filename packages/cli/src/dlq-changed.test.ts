import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMessage, type DeadLetter, type DeadLetterStore } from '@factline/core';
import {
  getSqliteDeadLetterStore,
  getSqliteEventStore,
  getSqliteTransport,
  openSqliteDatabase,
} from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import { runInProcess } from './fixtures/run-factline.ts';

/** A dead letter of `billing` on topic `orders`, dead-lettered at `at`. */
const deadLetter = (id: string, at: string, messageId?: string): DeadLetter => {
  const message = createMessage({ type: 'OrderPlaced', key: id, data: {} });
  return {
    id,
    consumer: 'billing',
    topic: 'orders',
    message: messageId ? { ...message, id: messageId } : message,
    error: { type: 'Error', message: `failed at ${at}` },
    reason: 'exhausted',
    attempts: 3,
    firstFailureAt: new Date(at),
    lastFailureAt: new Date(at),
    deadLetteredAt: new Date(at),
    redrives: [],
    state: 'dead',
  };
};

// `dlq redrive|discard` read the records, ask, then write: a record that changed while the question was asked
// (its message failed again, or someone else redrove or discarded it) is left as it is, and the output says so.
describe('factline dlq: records that changed since they were read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-dlq-changed-'));
  const file = join(dir, 'app.db');
  let database: Database;
  let store: DeadLetterStore;

  before(async () => {
    await getSqliteEventStore({ path: file }).close();
    database = openSqliteDatabase(file);
    store = getSqliteDeadLetterStore({ database });
    const transport = getSqliteTransport({ database });
    await transport.declareSubscription('orders', 'billing');
    await transport.close();
  });
  after(() => {
    database?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the CLI as on a terminal; `meanwhile` runs while it asks for confirmation, which is then given. */
  const run = (args: string[], meanwhile: () => Promise<void>) =>
    runInProcess([...args, '--db', `sqlite:${file}`], {
      cwd: dir,
      interactive: true,
      ask: async () => {
        await meanwhile();
        return 'y';
      },
    });

  it('discard writes only the records unchanged, names the others and exits 1', async () => {
    const failing = deadLetter('d-failing', '2026-01-01T00:00:00Z');
    await store.add(failing);
    await store.add(deadLetter('d-kept', '2026-01-01T00:00:00Z'));
    await store.add(deadLetter('d-elsewhere', '2026-01-01T00:00:00Z'));
    const result = await run(['dlq', 'discard', 'd-failing', 'd-kept', 'd-elsewhere'], async () => {
      // The message failed again (redriven by its consumer's own code, say): the record has a newer failure.
      await store.add({ ...deadLetter('other-id', '2026-01-02T00:00:00Z', failing.message.id), id: 'other-id' });
      const elsewhere = (await store.get('d-elsewhere')) as DeadLetter;
      assert.equal(await store.update({ ...elsewhere, state: 'discarded' }), true);
    });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, '1 dead letter discarded');
    assert.equal(
      result.stderr,
      'factline: 2 dead letters changed since read (failed again, or redriven or discarded elsewhere), left as they are, not discarded: d-failing, d-elsewhere',
    );
    const kept = (await store.get('d-failing')) as DeadLetter;
    assert.equal(kept.state, 'dead');
    assert.equal(kept.error.message, 'failed at 2026-01-02T00:00:00Z');
    assert.equal((await store.get('d-kept'))?.state, 'discarded');
  });

  it('redrive sends only the records unchanged: one failed again or discarded elsewhere is not sent, named apart, exit 1 (JSON)', async () => {
    const failing = deadLetter('r-failing', '2026-01-01T00:00:00Z');
    await store.add(failing);
    await store.add(deadLetter('r-discarded', '2026-01-01T00:00:00Z'));
    const kept = deadLetter('r-kept', '2026-01-01T00:00:00Z');
    await store.add(kept);
    const result = await run(['dlq', 'redrive', 'r-failing', 'r-discarded', 'r-kept', '--json'], async () => {
      await store.add({ ...deadLetter('x', '2026-01-03T00:00:00Z', failing.message.id), id: 'x' });
      // An operator said this message must not run.
      const discarded = (await store.get('r-discarded')) as DeadLetter;
      assert.equal(await store.update({ ...discarded, state: 'discarded' }), true);
    });
    assert.equal(result.code, 1, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { redriven: ['r-kept'], changed: ['r-failing', 'r-discarded'] });
    assert.match(
      result.stderr,
      /their messages were not sent, their records left as they are: r-failing, r-discarded$/,
    );
    const failed = (await store.get('r-failing')) as DeadLetter;
    assert.equal(failed.state, 'dead');
    assert.deepEqual(failed.redrives, []);
    assert.equal((await store.get('r-discarded'))?.state, 'discarded');
    assert.equal((await store.get('r-kept'))?.state, 'redriven');
    const queued = database
      .prepare("SELECT message_id FROM factline_transport_messages WHERE topic = 'orders' AND group_name = 'billing'")
      .all() as { message_id: string }[];
    assert.deepEqual(
      queued.map((row) => row.message_id),
      [kept.message.id],
      "only the unchanged record's message queued for billing",
    );
  });

  it('a redrive that fails part-way tells what it redrove, the one that failed and those not tried, exit 2', async () => {
    const transport = getSqliteTransport({ database });
    await transport.declareSubscription('orders', 'shipping');
    await transport.close();
    await store.add(deadLetter('f-bill', '2026-01-01T00:00:00Z'));
    await store.add({ ...deadLetter('f-ship', '2026-01-01T00:00:00Z'), consumer: 'shipping' });
    await store.add(deadLetter('f-after', '2026-01-01T00:00:00Z'));
    const result = await run(['dlq', 'redrive', 'f-bill', 'f-ship', 'f-after'], async () => {
      // The shipping group's queue goes away while the question is asked: its redrive fails.
      database.prepare("DELETE FROM factline_transport_groups WHERE group_name = 'shipping'").run();
    });
    assert.equal(result.code, 2, result.stderr);
    // Before: one error line, nothing said of f-bill, which was redriven.
    assert.equal(result.stdout, '1 dead letter redriven');
    assert.match(result.stderr, /^factline: redrive of f-ship failed, the run stopped there: .*; not tried: f-after$/);
    assert.equal((await store.get('f-bill'))?.state, 'redriven');
    assert.equal((await store.get('f-ship'))?.state, 'dead');
    assert.equal((await store.get('f-after'))?.state, 'dead');
  });
});

// Opening a dead-letter store migrates: the operator must not create Factline's tables where there are none.
describe('factline dlq redrive|discard on a file without dead letters', () => {
  it('refuses with exit 2 and creates nothing in it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'factline-dlq-other-'));
    const file = join(dir, 'other.db');
    try {
      const other = openSqliteDatabase(file);
      other.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY)');
      other.close();
      for (const command of ['discard', 'redrive']) {
        const { code, stderr } = await runInProcess(
          ['dlq', command, '--all-matching', '--yes', '--db', `sqlite:${file}`],
          { cwd: dir },
        );
        assert.equal(code, 2, stderr);
        assert.match(stderr, /other\.db holds no Factline dead letters \(no factline_dead_letters table\)/);
      }
      const after = openSqliteDatabase(file);
      const tables = after.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all();
      after.close();
      assert.deepEqual(tables, [{ name: 'notes' }], 'no table created');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
