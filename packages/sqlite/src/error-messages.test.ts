import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMessage, defineProjection, type Message, type ValidationError } from '@factline/core';
import type { Database } from 'better-sqlite3';
import { getSqliteDeadLetterStore, getSqliteInbox } from './messaging/sqlite-consumer-stores.ts';
import { getSqliteTransport } from './messaging/sqlite-transport.ts';
import { getSqliteOutbox } from './outbox/sqlite-outbox.ts';
import { startSqliteProjections } from './projections/sqlite-projections.ts';
import { getSqliteEventStore, openSqliteDatabase } from './store/sqlite-event-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-errors-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = () => join(dir, `errors-${++files}.db`);

describe('sqlite: errors say what happened', () => {
  it('a file in a missing directory is a ValidationError naming the path and the directory', () => {
    const path = join(dir, 'no-such-dir', 'app.db');
    for (const open of [
      () => openSqliteDatabase(path),
      () => getSqliteEventStore({ path }),
      () => getSqliteTransport({ path }),
    ]) {
      assert.throws(open, (error: ValidationError) => {
        assert.equal(error.code, 'VALIDATION');
        assert.equal(error.issues[0]?.path, 'path');
        assert.match(error.message, /no-such-dir.*does not exist/);
        assert.ok(error.message.includes(path), error.message);
        return true;
      });
    }
  });

  it('enqueue on a connection whose database has no outbox table says so and how to create it', () => {
    const withOutbox = openSqliteDatabase(file());
    const other = openSqliteDatabase(file());
    try {
      const outbox = getSqliteOutbox({ database: withOutbox });
      assert.throws(
        () => other.transaction(() => outbox.enqueue(other, 'orders', [{ type: 'OrderPlaced', data: {} }]))(),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'STORAGE');
          assert.match(error.message, /outbox's table \(factline_outbox\) is missing/);
          assert.match(error.message, /getSqliteOutbox\(\{ database \}\)/);
          return true;
        },
      );
    } finally {
      withOutbox.close();
      other.close();
    }
  });

  it('enqueue refuses messages JSON cannot carry faithfully with one ValidationError, and writes nothing', () => {
    const db = openSqliteDatabase(file());
    try {
      const outbox = getSqliteOutbox({ database: db });
      const built: Message = { ...createMessage({ type: 'Built', data: {} }), data: { at: Number.NaN } };
      const bad = [
        { type: 'A', data: { list: [undefined] } },
        { type: 'B', data: { byId: new Map() } },
        { type: 'C', data: () => 1 },
        { type: 'D', data: { amount: 1n } },
        { type: 'E\u0000', data: {} },
        { type: 'F', data: { name: '\uD800' } },
        built,
      ];
      assert.throws(
        () => db.transaction(() => outbox.enqueue(db, 'orders', bad))(),
        (error: ValidationError) => {
          assert.deepEqual(
            error.issues.map((issue) => issue.path),
            [
              'messages[0].data.list[0]',
              'messages[1].data.byId',
              'messages[2].data',
              'messages[3].data.amount',
              'messages[4].type',
              'messages[5].data.name',
              'messages[6].data.at',
            ],
          );
          return true;
        },
      );
      assert.equal(outbox.pending(), 0);
    } finally {
      db.close();
    }
  });

  it('a closed connection under an inbox or a dead-letter store names which is closed', async () => {
    const db = openSqliteDatabase(file());
    const inbox = getSqliteInbox({ database: db });
    const deadLetters = getSqliteDeadLetterStore({ database: db });
    db.close();
    await assert.rejects(inbox.has('billing', 'm-1'), { code: 'STORE_CLOSED', message: 'The inbox is closed' });
    await assert.rejects(deadLetters.list(), { code: 'STORE_CLOSED', message: 'The dead-letter store is closed' });
  });

  for (const lease of [true, false]) {
    it(`waitFor without a position fails at once with a ValidationError (lease: ${lease})`, async () => {
      const store = getSqliteEventStore({ path: file() });
      const projection = defineProjection<Database>({ name: 'totals', handles: ['Counted'], handle: () => {} });
      const runner = await startSqliteProjections(store, [projection], { lease });
      try {
        const started = Date.now();
        for (const position of [undefined, -1, 1.5, '3']) {
          await assert.rejects(runner.waitFor('totals', position as number, { timeoutMs: 5000 }), {
            code: 'VALIDATION',
            message: /position: must be an integer >= 0/,
          });
        }
        await assert.rejects(runner.waitFor('totals', 0, { timeoutMs: 'soon' as never }), { code: 'VALIDATION' });
        assert.ok(Date.now() - started < 2000, 'waitFor waited instead of failing at once');
      } finally {
        await runner.stop();
        await store.close();
      }
    });
  }
});
