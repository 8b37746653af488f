import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { uuidv7 } from '@factline/core';
import { getPostgresDeadLetterStore, getPostgresEventStore } from '@factline/postgres';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../../../postgres/src/fixtures/server.ts';
import { deadLetterRecord } from '../fixtures/dead-letter.ts';
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
      await (await getPostgresDeadLetterStore({ pool: store.pool, schema })).add(deadLetterRecord(id));
      assert.deepEqual(
        (await inspector.deadLetters({})).map((record) => record.id),
        [id],
      );
      assert.equal((await inspector.deadLetter(id))?.error.message, 'refused');
    } finally {
      await inspector.close();
      await store.close();
    }
  });
});
