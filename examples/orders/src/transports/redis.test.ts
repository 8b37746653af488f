import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnTestChild } from '@factline/core/testing';
import {
  redisUnavailable,
  redisUrl,
  removeKeys,
  testApplication,
} from '../../../../packages/redis/src/fixtures/server.ts';

const skip = await redisUnavailable();
const main = new URL('../main.ts', import.meta.url).pathname;

test('the orders example runs on Redis Streams with FACTLINE_TRANSPORT=redis://…', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-redis-'));
  const application = testApplication('orders');
  try {
    const run = spawnTestChild(main, [], {
      FACTLINE_TRANSPORT: redisUrl,
      FACTLINE_REDIS_APPLICATION: application,
      FACTLINE_ORDERS_DB: join(dir, 'orders.db'),
    });
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 90_000);
    await run.exited.finally(() => clearTimeout(timer));
    const output = run.stdout();
    assert.match(output, /relay → Redis Streams/, 'the services ran on Redis');
    assert.match(output, /1002\s+grace\s+paid/);
    assert.doesNotMatch(output, /timed out/);
  } finally {
    await removeKeys(application);
    rmSync(dir, { recursive: true, force: true });
  }
});
