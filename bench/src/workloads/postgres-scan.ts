/**
 * The PostgreSQL catch-up scan: the whole log read once in a fresh child process per scan, so its
 * peak RSS is the scan's own.
 *
 * The log (FACTLINE_BENCH_PG_SCAN_EVENTS events, default 1,000,000, over 1,000 streams) is seeded once
 * per run, in two schemas: a Factline store's and the raw table (`RAW_TABLE`). Both are filled with
 * one `INSERT … SELECT … FROM generate_series` and then `VACUUM ANALYZE`d, so that no scan pays for
 * setting hint bits. The Factline schema is seeded through SQL only when its tables have exactly the
 * columns this file writes (it leaves `streams` alone: the store keeps rows there only for truncated
 * or deleted streams), and then checked through a fresh store (head position, last events);
 * otherwise it is seeded through `store.append` (1,000 events per append: slower, always right).
 * `dropPostgresScanSchemas` removes both at the end of the run.
 */
import { spawnSync } from 'node:child_process';
import { NODE_FLAGS } from '../code-under-test.ts';
import type { Subject, Workload } from '../harness.ts';
import { orderData } from './payload.ts';
import {
  dropSchema,
  freshSchema,
  loadFactlinePostgres,
  pgUnavailable,
  pgUrl,
  RAW_TABLE,
  withAdmin,
} from './postgres.ts';

export const SCAN = Number(process.env.FACTLINE_BENCH_PG_SCAN_EVENTS ?? 1_000_000);
const STREAMS = 1000;

/** The JSON of payload.ts's orderData(g), built by PostgreSQL (the same text JSON.stringify gives). */
const ORDER_JSON = `format('{"orderId":"order-%s","customerId":"customer-%s","total":%s,"items":[{"sku":"sku-1","qty":1,"price":10},{"sku":"sku-2","qty":2,"price":10}]}', g, g % 97, 30 + g % 10)::json`;

/** Columns the SQL seeding of a Factline schema writes; it runs only when `events` has exactly these. */
const FACTLINE_COLUMNS = [
  'category',
  'data',
  'event_id',
  'metadata',
  'position',
  'recorded_at',
  'schema_version',
  'stream_id',
  'stream_version',
  'type',
];

const logs = new Map<'factline' | 'raw', Promise<string>>();
const schemas: string[] = [];

/** Drops the schemas the scan seeded (hundreds of MB for the 1M-event log). */
export async function dropPostgresScanSchemas(): Promise<void> {
  for (const schema of schemas.splice(0)) await dropSchema(schema).catch(() => {});
}

async function seedRaw(): Promise<string> {
  const schema = freshSchema('scan_raw');
  schemas.push(schema);
  await withAdmin(async (c) => {
    await c.query(RAW_TABLE(schema));
    await c.query(
      `INSERT INTO ${schema}.events (position, event_id, stream_id, stream_version, type, data, metadata, recorded_at)
       SELECT g, gen_random_uuid()::text, 'order-' || ((g - 1) % ${STREAMS}), (g - 1) / ${STREAMS} + 1, 'ItemAdded',
              ${ORDER_JSON}, '{}'::json, now()
       FROM generate_series(1, $1::bigint) AS g`,
      [SCAN],
    );
    await c.query(`SELECT setval('${schema}.events_position_seq', $1::bigint)`, [SCAN]);
    await c.query(`VACUUM ANALYZE ${schema}.events`);
  });
  return schema;
}

/** Seeds `schema` (an opened, empty Factline store's) through SQL; returns why not when it cannot. */
async function seedFactlineSql(schema: string): Promise<string | undefined> {
  return withAdmin(async (c) => {
    const { rows: columns } = await c.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = 'events'`,
      [schema],
    );
    const events = columns.map((row) => row.column_name).sort();
    if (events.join() !== FACTLINE_COLUMNS.join()) return `events has columns ${events.join(', ')}`;
    const { rows: sequence } = await c.query<{ seq: string | null }>(`SELECT to_regclass($1)::text AS seq`, [
      `${schema}.events_position_seq`,
    ]);
    if (!sequence[0]?.seq) return `no sequence ${schema}.events_position_seq`;
    await c.query('BEGIN');
    try {
      await c.query(
        `INSERT INTO ${schema}.events
           (position, event_id, stream_id, stream_version, category, type, schema_version, data, metadata, recorded_at)
         SELECT g, gen_random_uuid()::text, 'order-' || ((g - 1) % ${STREAMS}), (g - 1) / ${STREAMS} + 1, 'order',
                'ItemAdded', 1, ${ORDER_JSON}, '{}'::json, now()
         FROM generate_series(1, $1::bigint) AS g`,
        [SCAN],
      );
      await c.query(`SELECT setval('${schema}.events_position_seq', $1::bigint)`, [SCAN]);
      await c.query('COMMIT');
    } catch (error) {
      await c.query('ROLLBACK');
      return `seeding through SQL failed: ${(error as Error).message}`;
    }
    await c.query(`VACUUM ANALYZE ${schema}.events`);
    return undefined;
  });
}

/** Whether a fresh store on `schema` sees the seeded log: head at SCAN, the last events in order. */
async function verifyFactline(schema: string): Promise<string | undefined> {
  const factline = await loadFactlinePostgres();
  if (typeof factline === 'string') return factline;
  const store = await factline.getPostgresEventStore({ connectionString: pgUrl, schema });
  try {
    const head = await store.headPosition();
    if (head !== SCAN) return `head position ${head}, not ${SCAN}`;
    const tail: number[] = [];
    for await (const event of store.readAll({ after: SCAN - 3 })) tail.push(event.position);
    if (tail.join() !== [SCAN - 2, SCAN - 1, SCAN].join()) return `readAll after ${SCAN - 3} gave ${tail.join()}`;
    return undefined;
  } finally {
    await store.close();
  }
}

async function seedFactline(): Promise<string> {
  const factline = await loadFactlinePostgres();
  if (typeof factline === 'string') throw new Error(factline);
  const viaSql = freshSchema('scan_factline');
  schemas.push(viaSql);
  // Opening the store creates its tables.
  await (await factline.getPostgresEventStore({ connectionString: pgUrl, schema: viaSql })).close();
  const why = (await seedFactlineSql(viaSql)) ?? (await verifyFactline(viaSql));
  if (why === undefined) return viaSql;
  console.log(`# postgres-readall: seeding the Factline log through store.append (${why})`);
  await dropSchema(viaSql);
  const schema = freshSchema('scan_factline');
  schemas.push(schema);
  const store = await factline.getPostgresEventStore({ connectionString: pgUrl, schema });
  try {
    for (let i = 0; i < SCAN; i += 1000) {
      const events = Array.from({ length: Math.min(1000, SCAN - i) }, (_, j) => ({
        type: 'ItemAdded',
        data: orderData(i + j + 1),
      }));
      await store.append(`order-${(i / 1000) % STREAMS}`, events);
    }
  } finally {
    await store.close();
  }
  const still = await verifyFactline(schema);
  if (still) throw new Error(`the Factline scan log is wrong after seeding through append: ${still}`);
  return schema;
}

/** The schema holding the subject's log, seeded on first use and kept for the rest of the run. */
export function seeded(name: 'factline' | 'raw'): Promise<string> {
  let log = logs.get(name);
  if (!log) {
    log = (async () => {
      const started = Date.now();
      const schema = await (name === 'raw' ? seedRaw() : seedFactline());
      console.log(
        `# postgres-readall: seeded ${SCAN.toLocaleString('en')} ${name} events in ${Date.now() - started} ms`,
      );
      return schema;
    })();
    logs.set(name, log);
  }
  return log;
}

/** Runs a scan in a child process so that its peak RSS is its own. */
function scanInChild(schema: string, mode: ScanMode): { units: number; seconds: number; maxRssMB: number } {
  const child = spawnSync(
    process.execPath,
    [...NODE_FLAGS, new URL('../pg-scan-child.ts', import.meta.url).pathname, pgUrl, schema, mode],
    { encoding: 'utf8' },
  );
  if (child.status !== 0) throw new Error(`scan child failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').pop() as string);
}

type ScanMode = 'factline' | 'raw' | 'raw-postgresjs';

function childSubject(name: ScanMode): Subject {
  let rss = 0;
  return {
    name,
    trial: async () => {
      const reason = await pgUnavailable();
      if (reason) return reason;
      if (name === 'factline') {
        const factline = await loadFactlinePostgres();
        if (typeof factline === 'string') return factline;
      }
      let schema = '';
      return {
        setup: async () => {
          schema = await seeded(name === 'factline' ? 'factline' : 'raw');
        },
        run: () => {
          const result = scanInChild(schema, name);
          rss = result.maxRssMB;
          if (result.units !== SCAN) throw new Error(`${name} scan saw ${result.units} of ${SCAN} events`);
          return result;
        },
        extras: () => ({ rssMB: rss }),
      };
    },
  };
}

export const postgresScanWorkloads: Workload[] = [
  {
    name: 'postgres-readall',
    description: `catch-up read of a ${SCAN.toLocaleString('en')}-event log (${STREAMS} streams), each scan in a fresh process: rate and peak RSS (goal >= 0.5x raw, < 200 MB). factline: readAll({ batchSize: 1000 }); raw: pg keyset pages (WHERE position > $1 ORDER BY position LIMIT 1000, json parsed by pg); raw-postgresjs: the same pages through postgres.js. Seeded once per run`,
    unit: 'events/s',
    subjects: [childSubject('factline'), childSubject('raw'), childSubject('raw-postgresjs')],
  },
];
