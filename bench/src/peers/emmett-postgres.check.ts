/**
 * Self-check for the Emmett PostgreSQL peer: runs each trial once, small, each in a fresh schema
 * (dropped afterwards), and prints units, seconds, rate and extras.
 *
 *   node --conditions=factline-source --import tsx bench/src/peers/emmett-postgres.check.ts
 *
 * Connects to FACTLINE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import pg from 'pg';
import type { Trial } from '../harness.ts';
import {
  emmettPgAppendSingle,
  emmettPgConcurrent16,
  emmettPgGapCheck,
  emmettPgHot8,
  emmettPostgresUnavailable,
} from './emmett-postgres.ts';

const url = process.env.FACTLINE_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const checks: [string, (schema: string) => Promise<Trial | string>][] = [
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
let failed = false;
try {
  for (const [name, make] of checks) {
    const schema = `bench_emmett_check_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    await admin.query(`CREATE SCHEMA ${schema}`);
    try {
      const trial = await make(schema);
      if (typeof trial === 'string') {
        console.log(`${name}: skipped: ${trial}`);
        continue;
      }
      await trial.setup?.();
      const started = process.hrtime.bigint();
      const done = await trial.run();
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
      // A trial may time itself and report { units, seconds } (see harness.ts).
      const { units, seconds } = typeof done === 'number' ? { units: done, seconds: elapsed } : done;
      const extras = trial.extras?.() ?? {};
      await trial.teardown?.();
      const rate = (units / seconds).toFixed(1);
      console.log(
        `${name}: units=${units} seconds=${seconds.toFixed(3)} rate=${rate}/s extras=${JSON.stringify(extras)}`,
      );
    } catch (error) {
      failed = true;
      console.log(`${name}: FAILED: ${(error as Error).stack ?? String(error)}`);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
  }
} finally {
  await admin.end();
}
process.exitCode = failed ? 1 : 0;
