import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMessage } from '@factline/core';
import { settlesWithin, spawnTestChild, type TestChild, waitUntil } from '@factline/core/testing';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresTransport } from '../messaging/postgres-transport.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresTimerStore, postgresTimerProjection } from './postgres-timer-store.ts';

const skip = await postgresUnavailable();
const childScript = new URL('./fixtures/workflow-child.ts', import.meta.url).pathname;

test('postgres: a kill -9 between a decision and its outgoing messages; the workflow resumes, each step runs once', {
  skip,
  timeout: 120_000,
}, async (t) => {
  const schema = testSchema('workflow_kill');
  t.after(() => dropSchema(schema));
  const store = await getPostgresEventStore({
    connectionString: postgresUrl,
    schema,
    poolSize: 2,
    inlineProjections: [postgresTimerProjection({ schema })],
  });
  const transport = await getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 2, listen: false });
  const timers = await getPostgresTimerStore({ pool: store.pool, schema });
  // No unique constraint: a step applied twice would show as two rows.
  await store.pool.query(
    `CREATE TABLE "${schema}".test_effects (seq bigserial PRIMARY KEY, message_id text NOT NULL, type text NOT NULL, pid int NOT NULL)`,
  );
  // Both groups exist before anything is published to their topics.
  for (const [topic, group] of [
    ['jobs', 'job'],
    ['steps', 'steps'],
  ] as const) {
    const registration = transport.subscribe(topic, group);
    await registration.receive(1, 0, new AbortController().signal);
    await registration.close();
  }
  const inspect = async () => {
    const effects = await store.pool.query<{ type: string }>(`SELECT type FROM "${schema}".test_effects ORDER BY seq`);
    const { events } = await store.readStream('job-j1');
    return {
      effects: effects.rows.map((row) => row.type),
      inputs: events
        .filter((e) => e.type === '$workflow.input')
        .map((e) => (e.data as { message: { type: string } }).message.type),
      last: events.at(-1)?.type,
      pending: await timers.pendingCount(),
    };
  };
  const start = (crash: 'none' | 'after-decision') => spawnTestChild(childScript, [postgresUrl, schema, crash]);
  const ready = (child: TestChild, what: string) => waitUntil(() => child.stdout().includes('ready'), what, 30_000);
  let survivor: TestChild | undefined;
  try {
    const victim = start('after-decision');
    await ready(victim, 'the victim ready');
    await transport.publish('jobs', [
      createMessage({ type: 'Start', data: { id: 'j1', fireAt: Date.now() + 1500 }, key: 'j1' }),
    ]);
    await settlesWithin(victim.exited, 30_000, 'the victim killed itself');
    assert.match(victim.stdout(), /crashing after a decision/);
    const crashed = await inspect();
    assert.deepEqual(crashed.inputs, ['Start'], 'the decision committed');
    assert.deepEqual(crashed.effects, [], 'nothing was published before the kill');
    assert.equal(crashed.pending, 1, 'the timer was scheduled with the decision');

    survivor = start('none');
    await ready(survivor, 'the survivor ready');
    await waitUntil(async () => (await inspect()).last === '$workflow.completed', 'the instance completed', 30_000);
    await waitUntil(async () => (await inspect()).effects.length >= 2, 'both steps applied', 30_000);
  } finally {
    if (survivor) {
      survivor.child.kill('SIGTERM');
      await settlesWithin(survivor.exited, 30_000, 'the survivor stopped');
    }
  }
  try {
    const done = await inspect();
    assert.deepEqual(done.effects, ['Step1', 'Step2'], 'each step ran once, in order');
    assert.deepEqual(done.inputs, ['Start', 'Fire'], 'the redelivered Start was not decided again');
    assert.equal(done.pending, 0);
  } finally {
    await timers.close();
    await transport.close();
    await store.close();
  }
});
