import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnTestChild } from '@factline/core/testing';
import {
  natsUnavailable,
  natsUrl,
  removeStreams,
  testApplication,
} from '../../../../packages/nats/src/fixtures/server.ts';

const skip = await natsUnavailable();
const main = new URL('../main.ts', import.meta.url).pathname;

test('the orders example runs on NATS JetStream with FACTLINE_TRANSPORT=nats://…', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-nats-'));
  const application = testApplication('orders');
  try {
    const run = spawnTestChild(main, [], {
      FACTLINE_TRANSPORT: natsUrl,
      FACTLINE_NATS_APPLICATION: application,
      FACTLINE_ORDERS_DB: join(dir, 'orders.db'),
    });
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 90_000);
    await run.exited.finally(() => clearTimeout(timer));
    const output = run.stdout();
    assert.match(output, /relay → NATS JetStream/, 'the services ran on NATS JetStream');
    assert.match(output, /1002\s+grace\s+paid/);
    assert.doesNotMatch(output, /timed out/);
  } finally {
    await removeStreams([application]);
    rmSync(dir, { recursive: true, force: true });
  }
});
