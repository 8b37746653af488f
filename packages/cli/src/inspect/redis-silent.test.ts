import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { getRedisDeadLetterStore } from '@factline/redis';
import { createClient } from 'redis';
import { startForwarder } from '../../../core/src/testing/fixtures/forwarder.ts';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from '../../../redis/src/fixtures/server.ts';
import { assertOneLine } from '../fixtures/assert-output.ts';
import { deadLetterRecord } from '../fixtures/dead-letter.ts';
import { runFactline } from '../fixtures/run-factline.ts';
import { openRedisDeadLetterOperator, openRedisDeadLetterReader, redisRedriver } from './redis-dead-letters.ts';

// A Redis that stops answering without closing the connections (its host gone, a network dropping packets),
// through a TCP forwarder in front of the shared server that stops passing data: the CLI's commands and the
// dashboard's reads fail in bounded time saying so, closing never waits on it, and the dashboard reads again
// on a new connection once the path answers.
const skip = await redisUnavailable();
const application = testApplication('silent-cli');
const port = Number(new URL(redisUrl).port || 6379);

after(() => removeKeys(application));

describe('the CLI on a Redis that stops answering', { skip }, () => {
  it("the dashboard's reader fails a read in bounded time, then reads again on a new connection; closing does not wait", async () => {
    const client = createClient({ url: redisUrl });
    await client.connect();
    await getRedisDeadLetterStore({ client, application }).add(deadLetterRecord('dead-1'));
    await client.close();
    const forwarder = await startForwarder(() => port);
    const url = `redis://127.0.0.1:${forwarder.port}`;
    const dashboard = await openRedisDeadLetterReader(url, application, { reconnect: true, answerTimeoutMs: 500 });
    const oneShot = await openRedisDeadLetterReader(url, application, { answerTimeoutMs: 500 });
    try {
      assert.deepEqual(
        (await dashboard.list({})).map((r) => r.id),
        ['dead-1'],
      );
      forwarder.freeze();
      for (const reader of [dashboard, oneShot]) {
        const failed = await settlesWithin(
          reader.list({}).then(
            () => 'answered',
            (error: Error) => `${error.name}: ${error.message}`,
          ),
          5000,
          'a read on the silent server',
        );
        assert.match(failed, /^CliError: Redis at redis:\/\/127\.0\.0\.1:\d+ did not answer HVALS within 500 ms$/);
      }
      // Still silent: a new connection gets no answer either, and says so.
      await assert.rejects(dashboard.get('dead-1'), /did not answer while connecting within 5000 ms/);
      forwarder.thaw();
      const ids = await waitUntil(
        async () => (await dashboard.list({}).catch(() => undefined))?.map((r) => r.id),
        'the dashboard reading again',
        10_000,
        20,
      );
      assert.deepEqual(ids, ['dead-1']);
    } finally {
      await settlesWithin(dashboard.close(), 2000, "the dashboard reader's close");
      await settlesWithin(oneShot.close(), 2000, "the one-shot reader's close");
      await forwarder.close();
    }
  });

  it('a redrive fails in bounded time when the store or the transport gets no answer; the record stays dead; closing does not wait', async () => {
    const client = createClient({ url: redisUrl });
    await client.connect();
    const store = getRedisDeadLetterStore({ client, application });
    await store.add(deadLetterRecord('dead-2'));
    await client.sendCommand(['SADD', `${application}:groups:orders`, 'billing']);
    await client.sendCommand(['HSET', `${application}:partitions`, 'orders', '1']);
    const record = await store.get('dead-2');
    assert.ok(record);
    const outcome = (redriving: Promise<unknown>) =>
      settlesWithin(
        redriving.then(
          () => 'redriven',
          (error: Error) => `${error.name}: ${error.message}`,
        ),
        5000,
        'a redrive on the silent server',
      );

    // The operator's own connection silent: its first question fails.
    const forwarder = await startForwarder(() => port);
    const operator = await openRedisDeadLetterOperator(`redis://127.0.0.1:${forwarder.port}`, application, {
      answerTimeoutMs: 500,
    });
    forwarder.freeze();
    assert.match(
      await outcome(operator.redrive(record, new Date())),
      /^CliError: .* did not answer SISMEMBER within 500 ms$/,
    );
    await settlesWithin(operator.close(), 2000, "the operator's close");
    await forwarder.close();

    // Only the transport's connection silent (the questions answered on another): its send fails.
    const path = await startForwarder(() => port);
    const redriver = redisRedriver(client, `redis://127.0.0.1:${path.port}`, application, undefined, 500);
    try {
      await redriver.redeliver(record);
      path.freeze();
      assert.match(
        await outcome(redriver.redeliver(record)),
        /^CliError: .* did not answer the redrive of dead-2 \(it may have been sent: the record stays dead\) within 500 ms$/,
      );
      assert.equal((await store.get('dead-2'))?.state, 'dead');
    } finally {
      await settlesWithin(redriver.close(), 15_000, "the redriver's close (its transport's, bounded by the package)");
      await path.close();
      await client.close();
    }
  });

  it('factline dlq ls against it exits 2 with one line, in bounded time', async () => {
    const forwarder = await startForwarder(() => port);
    forwarder.freeze();
    try {
      const run = await settlesWithin(
        runFactline(['dlq', 'ls', '--db', `redis://127.0.0.1:${forwarder.port}`, '--app', application]),
        20_000,
        'factline dlq ls',
      );
      assert.equal(run.code, 2);
      assertOneLine(run.stderr, /Redis at redis:\/\/127\.0\.0\.1:\d+ did not answer while connecting within 5000 ms/);
    } finally {
      await forwarder.close();
    }
  });
});
