import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { Projection } from '@factline/core';
import { testShutdownOrders } from '@factline/core/testing';
import type { Database } from 'better-sqlite3';
import { getSqliteOutbox, startSqliteOutboxRelay } from '../outbox/sqlite-outbox.ts';
import { startSqliteProjections } from '../projections/sqlite-projections.ts';
import { getSqliteEventStore } from '../store/sqlite-event-store.ts';
import { getSqliteTransport } from './sqlite-transport.ts';

// Five parts share one file (the transport on the store's connection, as
// examples/orders does): all 120 orders are tried.
const dir = mkdtempSync(join(tmpdir(), 'factline-shutdown-'));
after(() => rmSync(dir, { recursive: true, force: true }));

testShutdownOrders({
  name: 'sqlite (one file, shared connection)',
  orders: 'all',
  async openService(n) {
    const store = getSqliteEventStore({ path: join(dir, `shutdown-${n}.db`) });
    const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 5 });
    const outbox = getSqliteOutbox({ database: store.database });
    return {
      store,
      transport,
      async enqueue(message) {
        store.database.transaction(() => outbox.enqueue(store.database, 'orders', [message]))();
      },
      startOutboxRelay: async () => startSqliteOutboxRelay(outbox, transport, { pollMs: 5, lease: false }),
      startProjections: (projections) => startSqliteProjections(store, projections as Projection<Database>[]),
    };
  },
});
