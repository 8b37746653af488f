import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getPostgresEventStore, type PostgresEventStore, postgresTimerProjection } from '@factline/postgres';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../../postgres/src/fixtures/server.ts';
import { runFactline, runJson } from './fixtures/run-factline.ts';
import { fillShippingInstances } from './fixtures/workflow-database.ts';
import type { WorkflowInstanceSummary } from './workflows/instance-summary.ts';

const unavailable = await postgresUnavailable();
const skip = unavailable === false ? false : unavailable;
const schema = testSchema('cliwf');
const definitions = fileURLToPath(new URL('./fixtures/shipping-workflow.ts', import.meta.url));
let store: PostgresEventStore | undefined;

const args = (...rest: string[]) => [...rest, '--db', postgresUrl, '--schema', schema];
const factline = (...rest: string[]) => runFactline(args(...rest));
const json = <T>(...rest: string[]) => runJson<T>(args(...rest));
const pendingTimers = async () =>
  (
    await (store as PostgresEventStore).pool.query<{ stream_id: string }>(
      `SELECT stream_id FROM "${schema}".workflow_timers ORDER BY stream_id`,
    )
  ).rows.map((r) => r.stream_id);

before(async () => {
  if (skip) return;
  store = await getPostgresEventStore({
    connectionString: postgresUrl,
    schema,
    poolSize: 2,
    inlineProjections: [postgresTimerProjection({ schema })],
  });
  await fillShippingInstances(store);
});

after(async () => {
  if (skip) return;
  await store?.close();
  await dropSchema(schema);
});

describe('factline workflows on a PostgreSQL schema', { skip }, () => {
  it('lists and shows instances, retries the parked one, cancels a running one and drops its timer', async () => {
    const all = await json<{ instances: WorkflowInstanceSummary[] }>('workflows', 'ls', '--name', 'shipping');
    assert.deepEqual(
      all.instances.map((s) => [s.instanceId, s.state, s.version, s.timers.length]),
      [
        ['A1', 'running', 5, 1],
        ['A2', 'completed', 8, 0],
        ['A3', 'parked', 5, 1],
        ['A4', 'running', 3, 1],
      ],
    );
    const paged = await json<{ instances: WorkflowInstanceSummary[]; next: string | null }>(
      'workflows',
      'ls',
      '--limit',
      '2',
      '--after',
      'shipping-A1',
    );
    assert.deepEqual([paged.instances.map((s) => s.instanceId), paged.next], [['A2', 'A3'], 'shipping-A3']);
    const shown = await factline('workflows', 'show', 'shipping', 'A3');
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /\nparked {2}since .* on AddressChanged /);

    const retried = await factline('workflows', 'retry', 'shipping', 'A3', '--workflows', definitions, '--yes');
    assert.equal(retried.code, 0, retried.stderr);
    assert.equal(retried.stdout, 'shipping-A3 resumed\n');
    assert.deepEqual(
      (await json<{ instances: WorkflowInstanceSummary[] }>('workflows', 'ls', '--state', 'parked')).instances,
      [],
    );

    assert.deepEqual(await pendingTimers(), ['shipping-A1', 'shipping-A3', 'shipping-A4']);
    const cancelled = await factline('workflows', 'cancel', 'shipping', 'A4', '--yes', '--json');
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.deepEqual(JSON.parse(cancelled.stdout), { streamId: 'shipping-A4', outcome: 'cancelled' });
    assert.deepEqual(await pendingTimers(), ['shipping-A1', 'shipping-A3']);
    assert.equal((await factline('workflows', 'show', 'shipping', 'A9')).code, 1);
  });
});
