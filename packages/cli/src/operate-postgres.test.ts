import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DeadLetter, defineProjection, type TraceTree } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import {
  getPostgresEventStore,
  getPostgresTransport,
  type PostgresEventStore,
  startPostgresProjections,
} from '@factline/postgres';
import { withClockOff } from '../../core/src/testing/fixtures/clock-off.ts';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../../postgres/src/fixtures/server.ts';
import { addOperationalState } from './fixtures/postgres-operations.ts';
import { runFactline, runInProcess, runJson } from './fixtures/run-factline.ts';
import type { OutboxStatus, ProjectionState, StoredEvent, StreamSummary } from './inspect/inspector.ts';

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;
const schema = testSchema('cli');
let store: PostgresEventStore | undefined;
let deadLetterId = '';

const args = (...rest: string[]) => [...rest, '--db', postgresUrl, '--schema', schema];
const factline = (...rest: string[]) => runFactline(args(...rest));
const json = <T>(...rest: string[]) => runJson<T>(args(...rest));

before(async () => {
  if (skip) return;
  store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 2 });
  const metadata = { correlationId: 'checkout-7' };
  await store.append('order-7', [{ type: 'OrderPlaced', data: { total: 30 }, metadata }], {
    expectedVersion: 'no-stream',
  });
  await store.append('order-7', [{ type: 'OrderShipped', data: {}, metadata }], { expectedVersion: 1 });
  await store.append('customer-ada', [{ type: 'CustomerJoined', data: {} }], { expectedVersion: 'no-stream' });
  deadLetterId = await addOperationalState(store, schema, metadata);
});

after(async () => {
  if (skip) return;
  await store?.close();
  await dropSchema(schema);
});

describe('factline on a PostgreSQL schema', { skip }, () => {
  it('reads streams, events, the trace, dead letters, the outbox and projections', async () => {
    const page = await json<{ streams: StreamSummary[] }>('streams', 'ls');
    assert.deepEqual(
      page.streams.map((s) => [s.streamId, s.category, s.version]),
      [
        ['customer-ada', 'customer', 1],
        ['order-7', 'order', 2],
      ],
    );
    const shown = await json<{ events: StoredEvent[] }>('streams', 'show', 'order-7');
    assert.deepEqual(
      shown.events.map((e) => [e.streamVersion, e.type]),
      [
        [1, 'OrderPlaced'],
        [2, 'OrderShipped'],
      ],
    );
    assert.equal((await factline('streams', 'show', 'order-8')).code, 1);
    const tail = await factline('events', 'tail', '--from', '1', '--count', '3');
    assert.match(tail.stdout, /^#1 {2}order-7@1 {2}OrderPlaced v1 .*\n#2 .*\n#3 {2}customer-ada@1 /);

    const tree = await json<TraceTree>('trace', 'checkout-7');
    assert.equal(tree.found, true);
    assert.ok(tree.nodeCount >= 3, `events, outbox entry and dead letter: ${tree.nodeCount}`);
    assert.deepEqual(
      (await json<DeadLetter[]>('dlq', 'ls', '--group', 'billing')).map((r) => r.id),
      [deadLetterId],
    );
    assert.equal((await json<DeadLetter>('dlq', 'show', deadLetterId)).error.message, 'card declined');
    const outbox = await json<OutboxStatus>('outbox', 'status');
    assert.equal(outbox.waiting, 1);
    const [projection] = await json<ProjectionState[]>('projections', 'status');
    assert.deepEqual([projection?.name, projection?.position, projection?.lag], ['order_count', 3, 0]);
  });

  it('reads on read-only transactions: the connection refuses writes', async () => {
    // The inspector's pool setting, checked on a connection of its own.
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: postgresUrl, options: '-c default_transaction_read_only=on' });
    await client.connect();
    try {
      await assert.rejects(client.query(`CREATE TABLE "${schema}".nope (x int)`), /read-only transaction/);
    } finally {
      await client.end();
    }
  });

  it('pauses a running projection at its next batch, resumes it, and rebuilds it on request', async () => {
    const pgStore = store as PostgresEventStore;
    const counted: number[] = [];
    const runner = await startPostgresProjections(
      pgStore,
      [
        defineProjection({
          name: 'ship_count',
          handles: ['OrderShipped'],
          handle: (events) => {
            counted.push(...events.map((e) => e.position));
          },
        }),
      ],
      { idleCheckMs: 20 },
    );
    try {
      await runner.waitFor('ship_count', await pgStore.headPosition());
      assert.equal((await factline('projections', 'pause', 'ship_count')).code, 0);
      await waitUntil(() => runner.status('ship_count').state === 'paused', 'the runner holds');
      const before = runner.status('ship_count').checkpoint;
      const { position } = await pgStore.append('order-8', [{ type: 'OrderShipped', data: {} }], {
        expectedVersion: 'no-stream',
      });
      const status = await json<ProjectionState[]>('projections', 'status');
      assert.deepEqual(
        status.filter((p) => p.name === 'ship_count').map((p) => [p.paused, p.position]),
        [[true, before]],
      );
      assert.equal(runner.status('ship_count').checkpoint, before, 'nothing applied while paused');
      assert.equal((await factline('projections', 'resume', 'ship_count')).code, 0);
      await runner.waitFor('ship_count', position);
      assert.deepEqual(counted.slice(-1), [position]);

      const applied = counted.length;
      const rebuilt = await factline('projections', 'rebuild', 'ship_count', '--json', '--interval-ms', '20');
      assert.equal(rebuilt.code, 0, rebuilt.stderr);
      assert.ok((JSON.parse(rebuilt.stdout) as { target: number }).target >= position);
      assert.deepEqual(counted.slice(applied).sort(), counted.slice(0, applied).sort(), 'every event applied again');
    } finally {
      await runner.stop();
    }
  });

  it('redrives a dead letter into its group’s queue, once', async () => {
    const refused = await factline('dlq', 'redrive', deadLetterId);
    assert.equal(refused.code, 2);
    const nowhere = await factline('dlq', 'redrive', deadLetterId, '--yes');
    assert.equal(nowhere.code, 2, 'no queue for the group: nothing is marked redriven');
    assert.match(nowhere.stderr, /group 'billing' has no queue for topic 'orders'/);
    assert.equal((await json<DeadLetter>('dlq', 'show', deadLetterId)).state, 'dead');

    // The application's consumer declares its group's queue when it subscribes.
    const transport = await getPostgresTransport({ pool: (store as PostgresEventStore).pool, schema, listen: false });
    await transport.declareSubscription('orders', 'billing');
    await transport.close();
    const run = await factline('dlq', 'redrive', deadLetterId, '--yes');
    assert.equal(run.code, 0, run.stderr);
    const { rows } = await (store as PostgresEventStore).pool.query<{ group_name: string; type: string }>(
      `SELECT group_name, message->>'type' AS type FROM "${schema}".transport_messages WHERE topic = 'orders'`,
    );
    assert.deepEqual(rows, [{ group_name: 'billing', type: 'OrderPlaced' }]);
    assert.equal((await json<DeadLetter>('dlq', 'show', deadLetterId)).state, 'redriven');
    assert.equal((await factline('dlq', 'redrive', deadLetterId, '--yes')).code, 1);
  });

  it('outbox status gives the entries’ ages by the server’s clock, whatever the clock of the machine it runs on', async () => {
    const serverAge = async () => {
      const { rows } = await (store as PostgresEventStore).pool.query<{ ms: number }>(
        `SELECT (extract(epoch FROM now() - min(created_at)) * 1000)::float8 AS ms FROM "${schema}".outbox`,
      );
      return rows[0]?.ms as number;
    };
    for (const skewMs of [3_600_000, -3_600_000]) {
      const before = await serverAge();
      // Run in this process, its clock an hour off the server's.
      const run = await withClockOff(skewMs, () => runInProcess([...args('outbox', 'status'), '--json']));
      const after = await serverAge();
      assert.equal(run.code, 0, run.stderr);
      const status = JSON.parse(run.stdout) as OutboxStatus;
      const ages = [status.oldestAgeMs, ...status.topics.map((t) => t.oldestAgeMs)];
      for (const age of ages) {
        assert.ok(
          age !== null && age >= before - 1 && age <= after + 1,
          `a clock ${skewMs / 1000} s off: between ${before} and ${after} ms, got ${age}`,
        );
      }
    }
  });

  it('projections status gives the checkpoints’ ages by the server’s clock, whatever the clock of the machine it runs on', async () => {
    const serverAge = async () => {
      const { rows } = await (store as PostgresEventStore).pool.query<{ ms: number }>(
        `SELECT (extract(epoch FROM now() - updated_at) * 1000)::float8 AS ms FROM "${schema}".projections
          ORDER BY name LIMIT 1`,
      );
      return rows[0]?.ms as number;
    };
    const units = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };
    for (const skewMs of [3_600_000, -3_600_000]) {
      const before = await serverAge();
      // Run in this process, its clock an hour off the server's.
      const [text, json] = await withClockOff(skewMs, () =>
        Promise.all([
          runInProcess(args('projections', 'status')),
          runInProcess([...args('projections', 'status'), '--json']),
        ]),
      );
      const after = await serverAge();
      assert.equal(text.code, 0, text.stderr);
      const [, n, unit] = text.stdout.split('\n')[1]?.match(/ {2}(\d+) (ms|s|min|h|d) ago$/) ?? [];
      const size = units[unit as keyof typeof units] ?? Number.NaN;
      const shown = Number(n) * size;
      // Printed rounded to its unit.
      assert.ok(
        shown >= before - size / 2 - 1 && shown <= after + size / 2 + 1,
        `a clock ${skewMs / 1000} s off: ${before}-${after} ms ago, printed ${n} ${unit} ago`,
      );
      assert.equal(json.code, 0, json.stderr);
      const [state] = JSON.parse(json.stdout) as ProjectionState[];
      const age = state?.checkpointAgeMs as number;
      assert.ok(
        age >= before - 1 && age <= after + 1,
        `a clock ${skewMs / 1000} s off: ${before}-${after} ms, got ${age}`,
      );
    }
  });

  it('a server that does not answer is a connection error, exit 2', async () => {
    const run = await runFactline(['streams', 'ls', '--db', 'postgres://nobody@127.0.0.1:1/none']);
    assert.equal(run.code, 2);
    assert.match(
      run.stderr.trimEnd(),
      /^factline: cannot connect to PostgreSQL at postgres:\/\/127\.0\.0\.1:1\/none: /,
    );
  });
});
