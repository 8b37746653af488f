import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { Message, Projection } from '@factline/core';
import { testStartUpOrders } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { getSqliteOutbox, startSqliteOutboxRelay } from '../outbox/sqlite-outbox.ts';
import { startSqliteProjections } from '../projections/sqlite-projections.ts';
import { getSqliteEventStore } from '../store/sqlite-event-store.ts';
import { getSqliteTransport } from './sqlite-transport.ts';

// Each part on its own connection to the file, as separate processes would be.
const dir = mkdtempSync(join(tmpdir(), 'factline-start-up-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

testStartUpOrders({
  name: 'sqlite (one file, a connection per part)',
  async openBackend() {
    const path = join(dir, `start-up-${++files}.db`);
    const store = getSqliteEventStore({ path });
    const db = store.database;
    const outbox = getSqliteOutbox({ database: db });
    return {
      store,
      openTransport: async () => getSqliteTransport({ path, pollIntervalMs: 10 }),
      enqueue: async () =>
        db.transaction(() =>
          outbox.enqueue(db, 'orders', [{ type: 'OrderPlaced', data: { id: 'o-1' }, key: 'o-1' }]),
        )()[0] as Message,
      pendingInOutbox: async () => outbox.pending(),
      startOutboxRelay: async (transport) =>
        startSqliteOutboxRelay(outbox, transport, { pollMs: 10, holdBackoffMaxMs: 40 }),
      startProjections: (projections, options) =>
        startSqliteProjections(store, projections as Projection<Database>[], options),
      // The transport's table exists once any transport opened the file.
      queued: async () => {
        const table = db
          .prepare("SELECT 1 FROM sqlite_master WHERE name = 'factline_transport_messages'")
          .get() as unknown;
        if (!table) return 0;
        return (db.prepare('SELECT COUNT(*) AS n FROM factline_transport_messages').get() as { n: number }).n;
      },
      close: () => store.close(),
    };
  },
});
