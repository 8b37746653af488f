// Child process of the scan benchmark: scans one store file and prints
// {"units", "seconds", "maxRssMB"} as its last line.
import { getSqliteEventStore } from '@factline/sqlite';
import Sqlite from 'better-sqlite3';

const [path, mode] = process.argv.slice(2) as [string, 'factline' | 'raw'];
let units = 0;
const started = process.hrtime.bigint();
if (mode === 'factline') {
  const store = getSqliteEventStore({ path });
  for await (const _ of store.readAll()) units++;
  await store.close();
} else {
  const db = new Sqlite(path, { readonly: true });
  for (const _ of db.prepare('SELECT * FROM factline_events').iterate()) units++;
  db.close();
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ units, seconds, maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024) }));
