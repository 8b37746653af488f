// Child process of the PostgreSQL scan benchmark: reads one seeded schema's whole log and prints
// {"units", "seconds", "maxRssMB"} as its last line. The clock starts once the connection (or store)
// is open. Arguments: <connection string> <schema> <factline|raw|raw-postgresjs>.
import { createRequire } from 'node:module';
import pg from 'pg';

const [url, schema, mode] = process.argv.slice(2) as [string, string, 'factline' | 'raw' | 'raw-postgresjs'];
if (!/^[a-z_][a-z0-9_]*$/.test(schema ?? '')) throw new Error(`bad schema name: ${schema}`);
let units = 0;
let seconds: number;
if (mode === 'factline') {
  const { getPostgresEventStore } = await import('@factline/postgres');
  const store = await getPostgresEventStore({ connectionString: url, schema });
  const started = process.hrtime.bigint();
  for await (const _ of store.readAll({ batchSize: 1000 })) units++;
  seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await store.close();
} else if (mode === 'raw-postgresjs') {
  // The same keyset pages through postgres.js (from bench/.peers), prepared; it parses json too.
  type Sql = {
    unsafe(text: string, values: unknown[], options: { prepare: boolean }): Promise<{ position: string }[]>;
    end(): Promise<void>;
  };
  const postgres = createRequire(new URL('../.peers/package.json', import.meta.url))('postgres') as (
    url: string,
    options: { max: number },
  ) => Sql;
  const sql = postgres(url, { max: 1 });
  await sql.unsafe('SELECT 1', [], { prepare: false });
  const text = `SELECT position, event_id, stream_id, stream_version, type, data, metadata, recorded_at
                FROM ${schema}.events WHERE position > $1 ORDER BY position LIMIT 1000`;
  const started = process.hrtime.bigint();
  let after = '0';
  for (;;) {
    const rows = await sql.unsafe(text, [after], { prepare: true });
    const last = rows[rows.length - 1];
    if (!last) break;
    units += rows.length;
    after = String(last.position);
  }
  seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await sql.end();
} else {
  // A plain keyset scan, a page of 1,000 at a time; pg's default type parser JSON.parses data and metadata.
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const page = {
    name: 'scan_page',
    text: `SELECT position, event_id, stream_id, stream_version, type, data, metadata, recorded_at
           FROM ${schema}.events WHERE position > $1 ORDER BY position LIMIT 1000`,
  };
  const started = process.hrtime.bigint();
  let after = '0';
  for (;;) {
    const { rows } = await client.query<{ position: string }>({ ...page, values: [after] });
    const last = rows[rows.length - 1];
    if (!last) break;
    units += rows.length;
    after = last.position;
  }
  seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await client.end();
}
console.log(JSON.stringify({ units, seconds, maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024) }));
