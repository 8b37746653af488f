// `npm start`: the reference system on the embedded SQLite default.
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { getSqliteEventStore } from '@factline/sqlite';
import { runOrdersDemo } from './demo.ts';

const path = resolve(process.env.FACTLINE_ORDERS_DB ?? new URL('../.data/orders.db', import.meta.url).pathname);
mkdirSync(dirname(path), { recursive: true });
// The demo tells the same story on every run: start from an empty file.
for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });

const store = getSqliteEventStore({ path });
try {
  console.log(`Factline orders example — SQLite store at ${path}\n`);
  await runOrdersDemo(store);
} finally {
  await store.close();
}
