import { test } from 'node:test';
import type { SchemaRegistry } from '@factline/core';
import { checkParksOnAnyFailureText } from '../../../core/src/workflows/fixtures/failure-text-flow.ts';
import { checkRecordedInputsUpcast } from '../../../core/src/workflows/fixtures/versioned-flow.ts';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresEventStore } from '../store/postgres-event-store.ts';
import { getPostgresTimerStore, postgresTimerProjection } from './postgres-timer-store.ts';

const skip = await postgresUnavailable();

/** One schema opened by successive releases, each with its registry; the timers from the schema's table. */
function releasesOf(schema: string) {
  return async (schemas: SchemaRegistry) => {
    const store = await getPostgresEventStore({
      connectionString: postgresUrl,
      schema,
      poolSize: 2,
      schemas,
      inlineProjections: [postgresTimerProjection({ schema })],
    });
    const timers = await getPostgresTimerStore({ pool: store.pool, schema });
    return {
      store,
      timers,
      close: async () => {
        await timers.close();
        await store.close();
      },
    };
  };
}

for (const kind of ['message', 'event'] as const) {
  test(`postgres: evolve gets a recorded input, and decide a live one, at the current version (${kind} types)`, {
    skip,
  }, async (t) => {
    const schema = testSchema(`inputs_${kind}`);
    t.after(() => dropSchema(schema));
    await checkRecordedInputsUpcast(kind, releasesOf(schema));
  });
}

test('postgres: a decision failing with a NUL or a lone surrogate in its error parks the instance, the text marked', {
  skip,
}, async (t) => {
  const schema = testSchema('park_text');
  t.after(() => dropSchema(schema));
  const store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 2 });
  try {
    await checkParksOnAnyFailureText(store, 'uploads');
  } finally {
    await store.close();
  }
});
