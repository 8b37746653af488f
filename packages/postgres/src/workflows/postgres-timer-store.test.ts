import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { createMessage, createWorkflowHandler, isValidationError } from '@factline/core';
import { testTimerStoreConformance, waitUntil } from '@factline/core/testing';
import pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { reminder } from './fixtures/reminder-workflow.ts';
import { getPostgresTimerStore, postgresTimerProjection, timerChannel } from './postgres-timer-store.ts';
import { startPostgresWorkflowTimers } from './postgres-workflow-timers.ts';

const skip = await postgresUnavailable();
const schema = testSchema('timers');

const open = async () => {
  const store = await getPostgresEventStore({
    connectionString: postgresUrl,
    schema,
    poolSize: 4,
    inlineProjections: [postgresTimerProjection({ schema })],
  });
  const timers = await getPostgresTimerStore({ pool: store.pool, schema });
  return { store, timers };
};

testTimerStoreConformance({
  name: 'postgres',
  skip,
  async createEnvironment() {
    let current = await open();
    return {
      get store() {
        return current.store;
      },
      get timers() {
        return current.timers;
      },
      reopen: async () => {
        await current.timers.close();
        await current.store.close();
        current = await open();
        return current;
      },
      close: async () => {
        await current.timers.close();
        await current.store.close();
      },
    };
  },
});

test('the timer table is migrated once as component workflow-timers; options are checked', { skip }, async (t) => {
  t.after(() => dropSchema(schema));
  const { store, timers } = await open();
  try {
    const { rows } = await store.pool.query(
      `SELECT version FROM "${schema}".migrations WHERE component = 'workflow-timers'`,
    );
    assert.deepEqual(rows, [{ version: 1 }]);
    await assert.rejects(getPostgresTimerStore({ pool: store.pool, schema, pollMs: 1 } as never), isValidationError);
    for (const option of ['pollMs', 'leaseCheckMs']) {
      await assert.rejects(
        startPostgresWorkflowTimers(timers, { handlers: [], [option]: 2_147_483_648 }),
        (e: unknown) =>
          isValidationError(e) && e.issues[0]?.path.endsWith(`.${option}`) && /2147483647/.test(e.message),
      );
    }
  } finally {
    await timers.close();
    await store.close();
  }
});

test('getPostgresTimerStore refuses an empty connectionString or a pool that is none before it connects', {
  skip,
}, async (t) => {
  // node-postgres fills in what a connection string leaves out from PG* variables: set to the test
  // server, an empty string taken as one reaches it and creates the schema.
  const url = new URL(postgresUrl);
  const saved = { ...process.env };
  Object.assign(process.env, {
    PGHOST: url.hostname,
    PGPORT: url.port || '5432',
    PGUSER: decodeURIComponent(url.username),
    PGPASSWORD: decodeURIComponent(url.password),
    PGDATABASE: url.pathname.slice(1),
  });
  t.after(() => {
    for (const name of ['PGHOST', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGDATABASE']) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });
  const own = testSchema('timers_refused');
  t.after(() => dropSchema(own));
  for (const [option, given] of [
    ['connectionString', { connectionString: '' }],
    ['pool', { pool: {} }],
  ] as const) {
    const refused = await getPostgresTimerStore({ ...given, schema: own } as never).then(
      async (opened) => {
        await opened.close();
        return new Error(`${option} was taken`);
      },
      (error: unknown) => error,
    );
    assert.ok(isValidationError(refused), String(refused));
    assert.equal(refused.issues[0]?.path, `getPostgresTimerStore.${option}`);
  }
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [own]);
    assert.equal(rows.length, 0, 'nothing reached the database');
  } finally {
    await client.end();
  }
});

/** A store with the timer projection, its timer store and a reminder handler, on a schema of the test's own. */
const openOwn = async (t: TestContext, label: string) => {
  const own = testSchema(label);
  t.after(() => dropSchema(own));
  const store = await getPostgresEventStore({
    connectionString: postgresUrl,
    schema: own,
    poolSize: 4,
    inlineProjections: [postgresTimerProjection({ schema: own })],
  });
  const timers = await getPostgresTimerStore({ pool: store.pool, schema: own });
  return { own, store, timers, handler: createWorkflowHandler(reminder, { store }) };
};

test('startPostgresWorkflowTimers refuses a bad poller option, a handler that is not one or a timer store of another database, naming it', {
  skip,
}, async (t) => {
  const { store, timers } = await openOwn(t, 'timers_options');
  try {
    for (const [option, value] of [
      ['batchSize', 0],
      ['concurrency', 1.5],
      ['onError', 'log it'],
      ['logger', console.log],
    ] as const) {
      await assert.rejects(
        startPostgresWorkflowTimers(timers, { handlers: [], [option]: value }),
        (e: unknown) => isValidationError(e) && e.issues[0]?.path === `startPostgresWorkflowTimers.${option}`,
      );
    }
    // A handler that is not one: refused by the adapter's own check, before a lease or listen connection is made.
    await assert.rejects(
      startPostgresWorkflowTimers(timers, { handlers: [{}] as never }),
      (e: unknown) =>
        isValidationError(e) &&
        e.issues.length === 1 &&
        e.issues[0]?.path === 'startPostgresWorkflowTimers.handlers[0]' &&
        /no workflow\.name .* and no fireTimers or fireTimer function/.test(e.message),
    );
    for (const other of [
      undefined,
      { due: async () => [], nextDueAt: async () => undefined, pendingCount: async () => 0, remove: async () => {} },
    ]) {
      await assert.rejects(
        startPostgresWorkflowTimers(other as never, { handlers: [] }),
        (e: unknown) => isValidationError(e) && e.issues[0]?.path === 'startPostgresWorkflowTimers.timers',
      );
    }
  } finally {
    await timers.close();
    await store.close();
  }
});

test('one timer poller per schema fires; a standby takes over when the holder stops', { skip }, async (t) => {
  const { own, store, timers, handler } = await openOwn(t, 'timers_lease');
  const options = { handlers: [handler], schema: own, pollMs: 20, leaseCheckMs: 50 };
  const first = await startPostgresWorkflowTimers(timers, options);
  const second = await startPostgresWorkflowTimers(timers, options);
  try {
    await waitUntil(() => first.stats().held || second.stats().held, 'one poller holds the lease');
    assert.equal(first.stats().held && second.stats().held, false, 'never both');
    const [holder, standby] = first.stats().held ? [first, second] : [second, first];
    await handler.handle(createMessage({ type: 'Remind', data: { id: 'a', at: Date.now() } }));
    await waitUntil(() => holder.stats().fired === 1, 'the holder fired the first timer');
    await holder.stop();
    await waitUntil(() => standby.stats().held, 'the standby took the lease');
    await handler.handle(createMessage({ type: 'Remind', data: { id: 'b', at: Date.now() } }));
    await waitUntil(() => standby.stats().fired === 1, 'the standby fired the second timer');
    assert.equal(await timers.pendingCount(), 0);
  } finally {
    await first.stop();
    await second.stop();
    await timers.close();
    await store.close();
  }
});

test('a timer poller whose LISTEN connection drops tells onError once per drop and goes on firing', {
  skip,
}, async (t) => {
  const { own, store, timers, handler } = await openOwn(t, 'timers_listen');
  const errors: unknown[] = [];
  const poller = await startPostgresWorkflowTimers(timers, {
    handlers: [handler],
    schema: own,
    pollMs: 20,
    leaseCheckMs: 50,
    onError: (error) => errors.push(error),
  });
  // Only this poller's listen connection: the channel names the schema.
  const listen = `LISTEN "${timerChannel(own)}"`;
  const listening = async () =>
    (
      await store.pool.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'factline-workflow-timers-listen' AND query = $1",
        [listen],
      )
    ).rowCount === 1;
  try {
    for (let drop = 1; drop <= 2; drop++) {
      await waitUntil(listening, `the poller listening (${drop})`);
      await store.pool.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'factline-workflow-timers-listen' AND query = $1",
        [listen],
      );
      await waitUntil(() => errors.length === drop, `drop ${drop} told`);
      const told = errors[drop - 1] as Error & { code?: string };
      assert.equal(told.code, 'STORAGE');
      assert.match(told.message, /cannot LISTEN on .* it looks for due timers every pollMs/);
      await handler.handle(createMessage({ type: 'Remind', data: { id: `r-${drop}`, at: Date.now() } }));
      await waitUntil(() => poller.stats().fired === drop, `the timer after drop ${drop} fired`);
    }
    assert.equal(errors.length, 2, 'each drop told once');
  } finally {
    await poller.stop();
    await timers.close();
    await store.close();
  }
});
