import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type ConsumerErrorStage, createConsumer, type Message } from '@factline/core';
import { messageFromJson } from '@factline/core/adapter';
import { waitUntil } from '@factline/core/testing';
import { getRedisTransport } from '@factline/redis';
import { createClient } from 'redis';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from '../../../redis/src/fixtures/server.ts';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresDeadLetterStore } from './postgres-dead-letters.ts';
import { getPostgresInbox } from './postgres-inbox.ts';

const skip = (await postgresUnavailable()) || (await redisUnavailable());
const schema = testSchema('dlq_foreign');
const application = testApplication('dlq_foreign');

after(async () => {
  if (skip) return;
  await dropSchema(schema);
  await removeKeys(application);
});

/** A message as another service writes it into the stream: JSON text, with a NUL (and a lone surrogate) in it. */
const foreignJson = (id: string, text: string) =>
  `{"id":"${id}","type":"Upload\\u0000ed","data":{"note":"${text}","a\\u0000":1},` +
  `"metadata":{"correlationId":"corr\\u0000-1"},"key":"file\\u0000-1","headers":{"h":"x\\u0000"},` +
  `"createdAt":"2026-01-01T00:00:00.000Z"}`;

test('a message written outside Factline with a NUL in its id, type, key, data and correlation id reaches the PostgreSQL dead letters as it is, its key goes on, and a redrive refuses to send it, saying why', {
  skip,
}, async () => {
  const transport = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
  const deadLetters = await getPostgresDeadLetterStore({ connectionString: postgresUrl, schema });
  const raw = createClient({ url: redisUrl });
  raw.on('error', () => undefined);
  await raw.connect();
  const errors: { stage: ConsumerErrorStage; message: string }[] = [];
  const handled: Message[] = [];
  const consumer = createConsumer({
    name: 'uploads',
    topic: 'files',
    transport,
    deadLetters,
    maxRetries: 1,
    retryDelay: 0,
    handler(message) {
      if (message.type !== 'Later') throw new Error('cannot read the upload');
      handled.push(message);
    },
    onError: (error, context) => errors.push({ stage: context.stage, message: (error as Error).message }),
  });
  try {
    await consumer.start();
    const json = foreignJson('up\\u0000-1', 'a\\u0000b \\ud800 c');
    const original = messageFromJson(json);
    assert.equal(original.data && (original.data as { note: string }).note, 'a\u0000b \ud800 c');
    // The transport's stream format (publish.ts): one entry, field `m` the message's JSON; then a message of
    // the same key, which waits behind it.
    const later = `{"id":"later-1","type":"Later","data":{},"metadata":{},"key":"file\\u0000-1","headers":{},"createdAt":"2026-01-01T00:00:01.000Z"}`;
    await raw.sendCommand(['XADD', `${application}:stream:files:0`, '*', 'm', json]);
    await raw.sendCommand(['XADD', `${application}:stream:files:0`, '*', 'm', later]);

    await waitUntil(
      async () => (await deadLetters.list({ consumer: 'uploads' })).length === 1,
      'the foreign message dead-lettered',
      10_000,
    ).catch((error: Error) => {
      const stages = [...new Set(errors.map((e) => `${e.stage}: ${e.message}`))];
      throw new Error(`${error.message}; the consumer reported ${errors.length} errors: ${stages.join(' | ')}`);
    });
    await waitUntil(() => handled.some((m) => m.id === 'later-1'), "the key's later message handled", 10_000);
    assert.deepEqual(
      errors.filter((e) => e.stage !== 'handler'),
      [],
      'only the handler failed',
    );

    const [record] = await deadLetters.list({ consumer: 'uploads' });
    assert.ok(record);
    assert.deepEqual(record.message, original, 'the message kept as it was received');
    assert.deepEqual(await deadLetters.get(record.id), record, 'shown as listed');
    assert.deepEqual(
      (await deadLetters.list({ type: 'Upload\u0000ed' })).map((r) => r.id),
      [record.id],
      'found by its type',
    );
    // The operator's view of the row: the columns keep the id and type as JSON literals, the message shows a NUL as U+2400.
    const columns = await deadLetters.pool.query<{ message_id: string; message_type: string; correlation: string }>(
      `SELECT message_id, message_type, record->'message'->'metadata'->>'correlationId' AS correlation
         FROM "${schema}".dead_letters WHERE id = $1`,
      [record.id],
    );
    assert.deepEqual(columns.rows, [
      { message_id: '"up\\u0000-1"', message_type: '"Upload\\u0000ed"', correlation: 'corr\u2400-1' },
    ]);

    // A redrive sends no message Factline does not write (every transport checks it as a publish): it says so,
    // and the record stays dead, as it was.
    await assert.rejects(consumer.deadLetters.redrive(record.id), (error: Error) => {
      assert.equal(error.name, 'ValidationError');
      assert.match(error.message, /messages\[0\]\.data\.note: holds a lone surrogate/);
      assert.match(error.message, /messages\[0\]\.metadata\.correlationId: holds U\+0000 \(NUL\) at index 4/);
      return true;
    });
    assert.deepEqual(await deadLetters.get(record.id), record, 'still dead, unchanged');
    assert.equal(await consumer.deadLetters.discard(record.id), 1);
    assert.equal((await deadLetters.get(record.id))?.state, 'discarded');
    assert.deepEqual((await deadLetters.get(record.id))?.message, original);
  } finally {
    await consumer.stop();
    await transport.close();
    await deadLetters.close();
    await raw.close();
  }
});

for (const groupCommit of [false, true]) {
  test(`${groupCommit ? 'group commit' : 'a transaction per message'}: the PostgreSQL inbox refuses a foreign message whose id holds a NUL (a ValidationError, dead-lettered at once) and applies one holding a NUL in its data`, {
    skip,
  }, async () => {
    const topic = `inbox-${groupCommit}`;
    // A consumer of its own per variant: the inbox marks of one are not the other's.
    const name = `uploads-${groupCommit}`;
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    const deadLetters = await getPostgresDeadLetterStore({ connectionString: postgresUrl, schema });
    const inbox = await getPostgresInbox({ pool: deadLetters.pool, schema, groupCommit });
    const raw = createClient({ url: redisUrl });
    raw.on('error', () => undefined);
    await raw.connect();
    const stages: ConsumerErrorStage[] = [];
    const handled: Message[] = [];
    const consumer = createConsumer({
      name,
      topic,
      transport,
      deadLetters,
      inbox,
      handler: (message) => void handled.push(message),
      onError: (_error, context) => void stages.push(context.stage),
    });
    try {
      await consumer.start();
      const byId = `{"id":"up\\u0000-2","type":"Uploaded","data":{},"metadata":{},"key":"file-2","headers":{},"createdAt":"2026-01-01T00:00:00.000Z"}`;
      const byData = `{"id":"up-3","type":"Uploaded","data":{"note":"a\\u0000b"},"metadata":{},"key":"file-2","headers":{},"createdAt":"2026-01-01T00:00:01.000Z"}`;
      await raw.sendCommand(['XADD', `${application}:stream:${topic}:0`, '*', 'm', byId]);
      await raw.sendCommand(['XADD', `${application}:stream:${topic}:0`, '*', 'm', byData]);
      // Counted once acknowledged: its transaction (the mark) committed.
      await waitUntil(() => consumer.stats().handled === 1, 'the message with a NUL in its data applied', 10_000);
      await waitUntil(
        async () => (await deadLetters.list({ consumer: name, topic })).length === 1,
        'the message with a NUL in its id dead-lettered',
        10_000,
      );
      assert.deepEqual(handled[0], messageFromJson(byData));
      assert.equal(await inbox.has(name, 'up-3'), true, 'its mark kept');
      const [record] = await deadLetters.list({ consumer: name, topic });
      assert.deepEqual(record?.message, messageFromJson(byId));
      assert.equal(record?.error.type, 'ValidationError');
      assert.equal(record?.attempts, 1, 'not retried');
      assert.match(
        record?.error.message ?? '',
        /messageId: "up\\u0000-2" holds a NUL or a lone surrogate, which PostgreSQL's text cannot hold: the PostgreSQL inbox cannot keep its mark/,
      );
      assert.deepEqual(stages, ['handler'], 'reported once, as the handler failing');
      await assert.rejects(inbox.has(name, 'up\u0000-2'), { name: 'ValidationError' });
    } finally {
      await consumer.stop();
      await transport.close();
      await inbox.close();
      await deadLetters.close();
      await raw.close();
    }
  });
}
