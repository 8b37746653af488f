/**
 * Self-check for the Emmett PostgreSQL peer: runs each trial once, small, each in a fresh schema
 * (dropped afterwards), and prints units, seconds, rate and extras.
 *
 *   node --conditions=factline-source --import tsx bench/src/peers/emmett-postgres.check.ts
 *
 * Connects to FACTLINE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import pg from 'pg';
import {
  emmettPgAppendSingle,
  emmettPgConcurrent16,
  emmettPgGapCheck,
  emmettPgHot8,
  emmettPostgresUnavailable,
} from './emmett-postgres.ts';
import { type PeerCheck, runPeerChecks } from './peer-checks.ts';

const url = process.env.FACTLINE_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const checks: PeerCheck<string>[] = [
  ['append-single count=200', (schema) => emmettPgAppendSingle(url, schema, 200)],
  ['concurrent16 perWriter=10', (schema) => emmettPgConcurrent16(url, schema, 10)],
  ['hot8 perWriter=5', (schema) => emmettPgHot8(url, schema, 5)],
  [
    'gap-check writers=16 total=2000',
    (schema) => emmettPgGapCheck(url, schema, { writers: 16, total: 2000, shared: 4 }),
  ],
];

const unavailable = emmettPostgresUnavailable();
if (unavailable) console.log(`peer unavailable: ${unavailable}`);

const admin = new pg.Client({ connectionString: url });
await admin.connect();
try {
  const failed = await runPeerChecks(
    checks,
    async () => {
      const schema = `bench_emmett_check_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
      await admin.query(`CREATE SCHEMA ${schema}`);
      return schema;
    },
    (schema) => admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`),
  );
  process.exitCode = failed ? 1 : 0;
} finally {
  await admin.end();
}
