import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  complete,
  createMessage,
  createWorkflowHandler,
  createWorkflowTimers,
  defineWorkflow,
  type Event,
  schedule,
} from '@factline/core';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresTimerStore, postgresTimerProjection } from './postgres-timer-store.ts';

const skip = await postgresUnavailable();

type Reminder = Event<'Remind', { id: string; at: number }> | Event<'Ring', { id: string }>;
const reminder = defineWorkflow<null, Reminder>({
  name: 'reminder',
  inputs: ['Remind', 'Ring'],
  start: ['Remind'],
  correlate: (input) => input.data.id,
  initialState: () => null,
  evolve: (state) => state,
  decide: (input) =>
    input.type === 'Remind'
      ? schedule({ token: 'ring', at: new Date(input.data.at), message: { type: 'Ring', data: { id: input.data.id } } })
      : complete(),
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
    assert.deepEqual(await poller.fireDue(), { fired: count, dropped: 0, failed: 0 });
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
