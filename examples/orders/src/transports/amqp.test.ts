import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnTestChild } from '@factline/core/testing';
import {
  amqpUrl,
  namesOf,
  rabbitUnavailable,
  removeTopology,
  testApplication,
} from '../../../../packages/rabbitmq/src/fixtures/server.ts';
import { fulfilmentCommandsTopic, fulfilmentEventsTopic, fulfilmentGroups } from '../fulfilment/demo.ts';
import { orderEventsTopic } from '../services.ts';

const skip = await rabbitUnavailable();
const main = new URL('../main.ts', import.meta.url).pathname;

test('the orders example runs on RabbitMQ with FACTLINE_TRANSPORT=amqp://…', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-orders-amqp-'));
  const application = testApplication('orders');
  try {
    const run = spawnTestChild(main, [], {
      FACTLINE_TRANSPORT: amqpUrl,
      FACTLINE_AMQP_APPLICATION: application,
      FACTLINE_ORDERS_DB: join(dir, 'orders.db'),
    });
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 90_000);
    await run.exited.finally(() => clearTimeout(timer));
    const output = run.stdout();
    assert.match(output, /relay → RabbitMQ/, 'the services ran on RabbitMQ');
    assert.match(output, /1002\s+grace\s+paid/);
    assert.doesNotMatch(output, /timed out/);
    assert.match(output, /order 2003 .* cancelled \(no payment within 15 minutes\)/, 'the saga ran on RabbitMQ');
  } finally {
    const groups = ['inventory', 'payment', 'notification'].map((g): [string, string] => [orderEventsTopic, g]);
    groups.push([fulfilmentEventsTopic, fulfilmentGroups.saga], [fulfilmentCommandsTopic, fulfilmentGroups.services]);
    await removeTopology([{ declared: namesOf(application, groups) }]);
    rmSync(dir, { recursive: true, force: true });
  }
});
