import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  getPostgresDeadLetterStore,
  getPostgresEventStore,
  postgresTimerProjection,
  readPostgresSchemaVersions,
} from '@factline/postgres';
import {
  getSqliteDeadLetterStore,
  getSqliteEventStore,
  getSqliteTransport,
  openSqliteDatabase,
  readSqliteSchemaVersions,
  sqliteTimerProjection,
} from '@factline/sqlite';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../../postgres/src/fixtures/server.ts';
import { deadLetterRecord } from './fixtures/dead-letter.ts';
import { runInProcess } from './fixtures/run-factline.ts';
import { fillShippingInstances } from './fixtures/workflow-database.ts';

// An operator's newer CLI on a file an older Factline wrote: opening a store migrates, which would upgrade the
// application's schema from a CLI command (the older application would then refuse to start). The CLI refuses.
describe('factline on a SQLite file an older Factline wrote', () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-schema-older-'));
  const file = join(dir, 'app.db');

  before(async () => {
    const store = getSqliteEventStore({ path: file, inlineProjections: [sqliteTimerProjection()] });
    try {
      await store.append('order-1', [{ type: 'OrderPlaced', data: {} }], { expectedVersion: 'no-stream' });
      await fillShippingInstances(store);
    } finally {
      await store.close();
    }
    const database = openSqliteDatabase(file);
    try {
      await getSqliteDeadLetterStore({ database }).add(deadLetterRecord('d-1'));
      const transport = getSqliteTransport({ database });
      await transport.declareSubscription('orders', 'billing');
      await transport.close();
      // What the file looked like before the last step of two components: as an older Factline left it.
      database.exec(`
        DROP INDEX factline_dead_letters_live;
        CREATE UNIQUE INDEX factline_dead_letters_live ON factline_dead_letters (consumer, message_id)
          WHERE state = 'dead';
        DELETE FROM factline_migrations WHERE component = 'consumer' AND version = 4;
        DROP INDEX factline_events_correlation;
        DELETE FROM factline_migrations WHERE component = 'event-store' AND version = 2;
      `);
    } finally {
      database.close();
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const run = (...args: string[]) => runInProcess([...args, '--db', `sqlite:${file}`], { cwd: dir });
  const versions = () => {
    const database = openSqliteDatabase(file);
    try {
      return Object.fromEntries(readSqliteSchemaVersions(database).map((c) => [c.component, c.version]));
    } finally {
      database.close();
    }
  };

  it('reads what needs no store (streams, events), as before', async () => {
    const streams = await run('streams', 'ls', '--json');
    assert.equal(streams.code, 0, streams.stderr);
    assert.match(streams.stdout, /order-1/);
  });

  it('refuses the dead-letter commands, naming the component and both versions, and upgrades nothing', async () => {
    for (const args of [
      ['dlq', 'ls'],
      ['dlq', 'show', 'd-1'],
      ['dlq', 'discard', 'd-1', '--yes'],
      ['dlq', 'redrive', 'd-1', '--yes'],
    ]) {
      const result = await run(...args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stdout}`);
      assert.match(
        result.stderr,
        /^factline: .*app\.db: an older Factline wrote its schema: 'consumer' at version 3 \(this CLI's: 4\)\. The factline CLI would upgrade it, and does not change an application's schema/,
        args.join(' '),
      );
    }
    assert.equal(versions().consumer, 3, 'the consumer tables are as the older Factline left them');
    const database = openSqliteDatabase(file);
    try {
      const row = database.prepare('SELECT state FROM factline_dead_letters WHERE id = ?').get('d-1') as {
        state: string;
      };
      assert.equal(row.state, 'dead', 'nothing discarded or redriven');
    } finally {
      database.close();
    }
  });

  it('refuses a trace and a workflow change on an older event store, and upgrades nothing', async () => {
    const trace = await run('trace', 'some-correlation');
    assert.equal(trace.code, 2, trace.stdout + trace.stderr);
    assert.match(
      trace.stderr,
      /'event-store' at version 1 \(this CLI's: 2\), 'consumer' at version 3 \(this CLI's: 4\)/,
    );
    const cancel = await run('workflows', 'cancel', 'shipping', 'A4', '--yes');
    assert.equal(cancel.code, 2, cancel.stdout + cancel.stderr);
    assert.match(cancel.stderr, /an older Factline wrote its schema: 'event-store' at version 1 \(this CLI's: 2\)\./);
    assert.equal(versions()['event-store'], 1);
    const shown = await run('workflows', 'show', 'shipping', 'A4', '--json');
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal((JSON.parse(shown.stdout) as { state: string }).state, 'running', 'not cancelled');
  });
});

const unavailable = await postgresUnavailable();

describe('factline on a PostgreSQL schema an older Factline wrote', {
  skip: unavailable === false ? false : unavailable,
}, () => {
  const schema = testSchema('cli_older');
  const s = `"${schema}"`;

  before(async () => {
    const store = await getPostgresEventStore({
      connectionString: postgresUrl,
      schema,
      poolSize: 2,
      inlineProjections: [postgresTimerProjection({ schema })],
    });
    await fillShippingInstances(store);
    await (await getPostgresDeadLetterStore({ pool: store.pool, schema })).add(deadLetterRecord('d-1'));
    // What the schema looked like before the last step of two components: as an older Factline left it.
    await store.pool.query(`
      DROP INDEX ${s}.dead_letters_live;
      CREATE UNIQUE INDEX dead_letters_live ON ${s}.dead_letters (consumer, message_id) WHERE state = 'dead';
      DELETE FROM ${s}.migrations WHERE component = 'consumer' AND version = 4;
      DROP INDEX ${s}.events_correlation;
      DELETE FROM ${s}.migrations WHERE component = 'event-store' AND version = 3;
    `);
    await store.close();
  });
  after(async () => {
    await dropSchema(schema);
  });

  const run = (...args: string[]) => runInProcess([...args, '--db', postgresUrl, '--schema', schema]);

  it('refuses dead-letter changes and a workflow change, naming the components, and upgrades nothing', async () => {
    const discard = await run('dlq', 'discard', 'd-1', '--yes');
    assert.equal(discard.code, 2, discard.stdout + discard.stderr);
    assert.match(
      discard.stderr,
      new RegExp(
        `^factline: schema ${schema}: an older Factline wrote its schema: 'consumer' at version 3 \\(this CLI's: 4\\)\\.`,
      ),
    );
    const cancel = await run('workflows', 'cancel', 'shipping', 'A4', '--yes');
    assert.equal(cancel.code, 2, cancel.stdout + cancel.stderr);
    assert.match(cancel.stderr, /'event-store' at version 2 \(this CLI's: 3\)\./);
    const shown = await run('streams', 'ls', '--json');
    assert.equal(shown.code, 0, shown.stderr);
  });

  it('left the schema as it was, and the dead letter', async () => {
    const reader = new pg.Pool({ connectionString: postgresUrl, max: 1 });
    try {
      const versions = Object.fromEntries(
        (await readPostgresSchemaVersions(reader, schema)).map((c) => [c.component, c.version]),
      );
      assert.equal(versions.consumer, 3);
      assert.equal(versions['event-store'], 2);
      const { rows } = await reader.query(`SELECT state FROM ${s}.dead_letters WHERE id = 'd-1'`);
      assert.equal(rows[0]?.state, 'dead');
    } finally {
      await reader.end();
    }
  });
});
