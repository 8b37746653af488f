import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, uuidv7 } from '@factline/core';
import { getPostgresDeadLetterStore, getPostgresEventStore } from '@factline/postgres';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../../../postgres/src/fixtures/server.ts';
import { openPostgresInspector } from './postgres-inspector.ts';

const skip = await postgresUnavailable();
const schema = testSchema('inspector_late');

after(async () => {
  if (!skip) await dropSchema(schema);
});

describe('the PostgreSQL inspector', { skip }, () => {
  it('shows dead letters whose table was made after it opened (at a consumer’s first start)', async () => {
    const store = await getPostgresEventStore({ connectionString: postgresUrl, schema, poolSize: 2 });
    await store.append('order-1', [{ type: 'OrderPlaced', data: {} }]);
    const inspector = await openPostgresInspector(postgresUrl, schema);
    try {
      assert.deepEqual(await inspector.deadLetters({}), [], 'no table yet: none');
      const id = uuidv7();
      const at = new Date();
      await (await getPostgresDeadLetterStore({ pool: store.pool, schema })).add({
        id,
        consumer: 'billing',
        topic: 'orders',
        message: createMessage({ type: 'OrderPlaced', data: {}, key: 'order-1' }),
        error: { type: 'Error', message: 'card declined' },
        reason: 'retries exhausted',
        attempts: 3,
        firstFailureAt: at,
        lastFailureAt: at,
        deadLetteredAt: at,
        redrives: [],
        state: 'dead',
      });
      assert.deepEqual(
        (await inspector.deadLetters({})).map((record) => record.id),
        [id],
      );
      assert.equal((await inspector.deadLetter(id))?.error.message, 'card declined');
    } finally {
      await inspector.close();
      await store.close();
    }
  });
});
