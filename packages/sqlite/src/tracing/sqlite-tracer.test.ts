import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isValidationError, type Projection } from '@factline/core';
import { testTraceOperation } from '@factline/core/testing';
import Database from 'better-sqlite3';
import { getSqliteDeadLetterStore, getSqliteInbox } from '../messaging/sqlite-consumer-stores.ts';
import { getSqliteTransport } from '../messaging/sqlite-transport.ts';
import { getSqliteOutbox } from '../outbox/sqlite-outbox.ts';
import { startSqliteProjections } from '../projections/sqlite-projections.ts';
import { getSqliteEventStore } from '../store/sqlite-event-store.ts';
import { traceStatements } from './sqlite-trace-reader.ts';
import { getSqliteTracer } from './sqlite-tracer.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-trace-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

testTraceOperation<Database.Database>({
  name: 'sqlite (one file)',
  async open() {
    const store = getSqliteEventStore({ path: join(dir, `trace-${++files}.db`) });
    const database = store.database;
    const transport = getSqliteTransport({ database, pollIntervalMs: 10 });
    const outbox = getSqliteOutbox({ database });
    return {
      store,
      transport,
      inbox: getSqliteInbox({ database }),
      deadLetters: getSqliteDeadLetterStore({ database }),
      tracer: getSqliteTracer({ database }),
      startRelay: (relay) => startSqliteProjections(store, [relay as Projection<Database.Database>]),
      enqueue: (tx, topic, messages) => outbox.enqueue(tx, topic, messages),
      close: async () => {
        await transport.close();
        await store.close();
      },
    };
  },
});

/** Every table the trace reads, with its indexes, in a fresh file. */
function openFullFile() {
  const store = getSqliteEventStore({ path: join(dir, `plan-${++files}.db`) });
  const database = store.database;
  getSqliteTransport({ database });
  getSqliteOutbox({ database });
  getSqliteInbox({ database });
  return { store, database };
}

test('every statement of the trace reads through an index, never a scan of its table', async () => {
  const { store, database } = openFullFile();
  try {
    getSqliteTracer({ database });
    for (const [source, sql] of Object.entries(traceStatements)) {
      const plan = database
        .prepare(`EXPLAIN QUERY PLAN ${sql.replace('IN (?)', 'IN (?, ?, ?)')}`)
        .all(...(source === 'handled' ? ['a', 'b', 'c', 10] : ['x', 10])) as { detail: string }[];
      const details = plan.map((row) => row.detail).join(' | ');
      assert.match(details, /SEARCH \S+ USING (COVERING )?INDEX/, `${source}: ${details}`);
      assert.doesNotMatch(details, /\bSCAN\b/, `${source}: ${details}`);
    }
  } finally {
    await store.close();
  }
});

test('a file made before the trace existed gets its indexes when a tracer opens it', async () => {
  const path = join(dir, `old-${++files}.db`);
  const store = getSqliteEventStore({ path });
  await store.append('order-1', [{ type: 'OrderPlaced', data: {}, metadata: { correlationId: 'op' } }]);
  await store.close();
  // Back to the first schema version: the index and its migration row gone, as in a file from before.
  const raw = new Database(path);
  raw.exec('DROP INDEX factline_events_correlation; DELETE FROM factline_migrations WHERE version > 1');
  const index = () => raw.prepare("SELECT 1 FROM sqlite_master WHERE name = 'factline_events_correlation'").get();
  assert.equal(index(), undefined);
  const tree = await getSqliteTracer({ database: raw }).traceOperation('op');
  assert.notEqual(index(), undefined);
  assert.deepEqual(
    tree.roots.map((n) => n.type),
    ['OrderPlaced'],
  );
  // No component the file lacks is created.
  assert.equal(raw.prepare("SELECT 1 FROM sqlite_master WHERE name = 'factline_outbox'").get(), undefined);
  raw.close();
});

test('a file without Factline tables traces to an empty tree; bad options are refused', async () => {
  const raw = new Database(join(dir, `empty-${++files}.db`));
  try {
    const tree = await getSqliteTracer({ database: raw }).traceOperation('op');
    assert.equal(tree.found, false);
    assert.throws(
      () => getSqliteTracer({ database: raw, limit: 5 } as never),
      (e: unknown) => isValidationError(e) && /getSqliteTracer\.limit: is not an option/.test((e as Error).message),
    );
    assert.throws(() => getSqliteTracer({} as never), isValidationError);
  } finally {
    raw.close();
  }
});
