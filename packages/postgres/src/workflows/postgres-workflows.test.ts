import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { createMessage, createWorkflowHandler, createWorkflowTimers } from '@factline/core';
import { settlesWithin, spawnTestChild, waitUntil } from '@factline/core/testing';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore, type PostgresEventStore } from '../store/postgres-event-store.ts';
import { reminder } from './fixtures/reminder-workflow.ts';
import { getPostgresTimerStore, postgresTimerProjection } from './postgres-timer-store.ts';
import { startPostgresWorkflowTimers } from './postgres-workflow-timers.ts';

const skip = await postgresUnavailable();
const childScript = new URL('./fixtures/timer-child.ts', import.meta.url).pathname;

test('postgres: a kill -9 between a timer firing and its recording loses nothing; it fires once after', {
  skip,
  timeout: 120_000,
}, async (t) => {
  const schema = testSchema('timers_kill');
  t.after(() => dropSchema(schema));
  const store = await getPostgresEventStore({
    connectionString: postgresUrl,
    schema,
    poolSize: 2,
    inlineProjections: [postgresTimerProjection({ schema })],
  });
  const timers = await getPostgresTimerStore({ pool: store.pool, schema });
  const rings = async () => {
    const { rows } = await store.pool.query(
      `SELECT COUNT(*)::int AS n FROM "${schema}".events WHERE type = '$workflow.input' AND data->'timer' IS NOT NULL`,
    );
    return rows[0].n as number;
  };
  try {
    await createWorkflowHandler(reminder, { store }).handle(
      createMessage({ type: 'Remind', data: { id: 'k1', at: Date.now() + 200 } }),
    );
    const victim = spawnTestChild(childScript, [postgresUrl, schema, 'crash']);
    await settlesWithin(victim.exited, 30_000, 'the victim killed itself');
    assert.match(victim.stdout(), /crashing before recording a fired timer/);
    assert.equal(await timers.pendingCount(), 1, 'the timer is still pending');
    assert.equal(await rings(), 0);

    const survivor = spawnTestChild(childScript, [postgresUrl, schema, 'run']);
    try {
      await waitUntil(async () => (await timers.pendingCount()) === 0, 'the timer fired after the restart', 30_000);
    } finally {
      survivor.child.kill('SIGTERM');
      await survivor.exited;
    }
    assert.equal(await rings(), 1, 'recorded once');
    const { events } = await store.readStream('reminder-k1');
    assert.equal(events.at(-1)?.type, '$workflow.completed');
  } finally {
    await timers.close();
    await store.close();
  }
});

test('postgres: 10,000 timers pending across a restart all fire, each once', { skip, timeout: 600_000 }, async (t) => {
  const schema = testSchema('timers_10k');
  t.after(() => dropSchema(schema));
  const open = async () => {
    const store = await getPostgresEventStore({
      connectionString: postgresUrl,
      schema,
      poolSize: 8,
      inlineProjections: [postgresTimerProjection({ schema })],
    });
    return { store, timers: await getPostgresTimerStore({ pool: store.pool, schema }) };
  };
  const count = 10_000;
  const dueAt = Date.now() + 60_000;
  const first = await open();
  const scheduling = createWorkflowHandler(reminder, { store: first.store });
  for (let from = 0; from < count; from += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, count - from) }, (_, i) =>
        scheduling.handle(createMessage({ type: 'Remind', data: { id: `r${from + i}`, at: dueAt + from + i } })),
      ),
    );
  }
  assert.equal(await first.timers.pendingCount(), count);
  await first.timers.close();
  await first.store.close();

  const second = await open();
  try {
    const handler = createWorkflowHandler(reminder, { store: second.store });
    const later = dueAt + count + 1;
    const poller = createWorkflowTimers({
      timers: second.timers,
      handlers: [handler],
      batchSize: 500,
      concurrency: 48,
      clock: { now: () => later, setTimer: () => () => {} },
    });
    const before = second.store.stats().commits;
    assert.deepEqual(await poller.fireDue(), { fired: count, dropped: 0, failed: 0 });
    const commits = second.store.stats().commits - before;
    // Batches of 48, each through the store's group commit: a few commits per batch, not one per timer.
    assert.ok(commits <= Math.ceil(count / 48) * 4, `${commits} commits for ${count} timers`);
    assert.equal(await second.timers.pendingCount(), 0);
    const { rows } = await second.store.pool.query(
      `SELECT COUNT(*)::int AS records, COUNT(DISTINCT data->'timer'->>'timerId')::int AS timers
         FROM "${schema}".events WHERE type = '$workflow.input' AND data->'timer' IS NOT NULL`,
    );
    assert.deepEqual(rows[0], { records: count, timers: count });
  } finally {
    await second.timers.close();
    await second.store.close();
  }
});

/** Until the listening session has run its LISTEN: from then a notification is heard, not a reconnect's wake-up. */
const listening = (store: PostgresEventStore, schema: string) =>
  waitUntil(
    async () => {
      const { rows } = await store.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE application_name = 'factline-workflow-timers-listen'
            AND state = 'idle' AND query LIKE 'LISTEN %' AND query LIKE $1`,
        [`%${schema}%`],
      );
      return rows.length > 0;
    },
    'the poller listens on the timer channel',
    10_000,
  );

/**
 * Two store handles on a schema of their own with the timer projection inline (one polls, one schedules), and
 * the timer store on the polling one's pool; the schema is dropped after the test.
 */
async function twoHandles(t: TestContext, label: string) {
  const schema = testSchema(label);
  t.after(() => dropSchema(schema));
  const open = () =>
    getPostgresEventStore({
      connectionString: postgresUrl,
      schema,
      poolSize: 2,
      inlineProjections: [postgresTimerProjection({ schema })],
    });
  const polling = await open();
  const scheduling = await open();
  const timers = await getPostgresTimerStore({ pool: polling.pool, schema });
  return { schema, polling, scheduling, timers };
}

test('postgres: a timer scheduled from another store handle, due sooner than the next look, wakes the poller (NOTIFY)', {
  skip,
  timeout: 60_000,
}, async (t) => {
  const { schema, polling, scheduling, timers } = await twoHandles(t, 'timers_wake');
  const pollMs = 10_000;
  const poller = await startPostgresWorkflowTimers(timers, {
    handlers: [createWorkflowHandler(reminder, { store: polling })],
    pollMs,
    leaseCheckMs: 50,
  });
  try {
    await waitUntil(() => poller.stats().held, 'the poller holds its lease', 10_000);
    await listening(polling, schema);
    const started = Date.now();
    await createWorkflowHandler(reminder, { store: scheduling }).handle(
      createMessage({ type: 'Remind', data: { id: 'w1', at: started + 50 } }),
    );
    const completed = async () =>
      (await polling.readStream('reminder-w1')).events.at(-1)?.type === '$workflow.completed';
    await waitUntil(completed, 'the timer fired well before pollMs', 3_000);
    const firedAfter = Date.now() - started;
    assert.ok(firedAfter < pollMs / 4, `fired after ${firedAfter} ms, pollMs is ${pollMs}`);
    assert.equal(poller.stats().fired, 1);
  } finally {
    await poller.stop();
    await timers.close();
    await scheduling.close();
    await polling.close();
  }
});

test('postgres: a timer failing and waiting for its retry holds back neither the NOTIFY of a timer scheduled after it nor its firing', {
  skip,
  timeout: 60_000,
}, async (t) => {
  const { schema, polling, scheduling, timers } = await twoHandles(t, 'timers_stuck');
  const pollMs = 15_000;
  const errors: unknown[] = [];
  const poller = await startPostgresWorkflowTimers(timers, {
    handlers: [createWorkflowHandler(reminder, { store: polling })],
    pollMs,
    leaseCheckMs: 50,
    onError: (error) => errors.push(error),
  });
  try {
    await waitUntil(() => poller.stats().held, 'the poller holds its lease', 10_000);
    await listening(polling, schema);
    // A timer of a workflow the poller has no handler for: it fails, and waits pollMs for its retry.
    const orphan = createWorkflowHandler({ ...reminder, name: 'orphan' }, { store: scheduling });
    await orphan.handle(createMessage({ type: 'Remind', data: { id: 'o1', at: Date.now() + 50 } }));
    await waitUntil(() => errors.length >= 1, 'the orphan timer failed', 10_000);
    const started = Date.now();
    await createWorkflowHandler(reminder, { store: scheduling }).handle(
      createMessage({ type: 'Remind', data: { id: 'w1', at: started + 300 } }),
    );
    const completed = async () =>
      (await polling.readStream('reminder-w1')).events.at(-1)?.type === '$workflow.completed';
    await waitUntil(completed, 'the timer fired well before pollMs', 5_000);
    const firedAfter = Date.now() - started;
    assert.ok(firedAfter < pollMs / 4, `fired after ${firedAfter} ms, pollMs is ${pollMs}`);
    assert.equal(poller.stats().fired, 1);
  } finally {
    await poller.stop();
    await timers.close();
    await scheduling.close();
    await polling.close();
  }
});
