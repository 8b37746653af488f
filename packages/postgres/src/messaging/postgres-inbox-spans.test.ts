import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { checkHandlerSpans } from '../../../core/src/testing/fixtures/handler-spans.ts';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresInbox } from './postgres-consumer-stores.ts';

const skip = await postgresUnavailable();

describe('postgres inbox and spans', { skip }, () => {
  const schema = testSchema('inbox_spans');
  const pool = new pg.Pool({ connectionString: postgresUrl, max: 4 });
  after(async () => {
    await pool.end();
    await dropSchema(schema);
  });

  for (const groupCommit of [true, false]) {
    it(`each handler runs under its own delivery's process span (${groupCommit ? 'group commit' : 'a transaction per message'})`, async () => {
      const inbox = await getPostgresInbox({ pool, schema, groupCommit });
      assert.equal(await checkHandlerSpans(inbox, `spans-${groupCommit}`), 8);
    });
  }
});
