import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createSchemaRegistry, defineEvent, isValidationError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { z } from 'zod';
import { checkAgainst, renamed, schemas, shipWithSchemas, upgradeOrders } from './schema-evolution.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'factline-schema-doc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the guide’s store reads a v1 OrderPlaced at v2 and refuses an invalid append with every issue', async (t) => {
  const run = await upgradeOrders(join(tempDir(t), 'orders.db'));
  assert.equal(run.currency, 'EUR');
  assert.deepEqual(run.events[0]?.data, { orderId: '1', total: 30, currency: 'EUR' });
  assert.deepEqual(run.stored, [{ schema_version: 1, data: '{"orderId":"1","total":30}' }]);
  assert.deepEqual(
    run.issues.map((i) => i.path),
    ['events[0].data.total', 'events[0].data.currency'],
  );
  assert.equal(run.head, 1, 'nothing written for the refused append');
});

test('the guide’s consumer gets its message decoded through the registry', async (t) => {
  const run = await shipWithSchemas(join(tempDir(t), 'ship.db'));
  t.after(run.close);
  await waitUntil(() => run.shipped.length > 0, 'the ShipOrder handled', 5000);
  assert.deepEqual(run.shipped, ['1 by post']);
  assert.equal(run.shipping.stats().errors, 0);
});

test('the guide’s renames: a field moved by an upcaster, an old type still handled beside its successor', () => {
  const { customer, reasons } = renamed();
  assert.deepEqual(customer, { data: { customerId: 'c-1', email: 'ada@example.com' }, schemaVersion: 2 });
  assert.deepEqual(reasons, ['cancelled', 'fraud']);
});

test('the guide’s check passes the registry against its own snapshot and reports the removed field', (t) => {
  const errors: unknown[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => errors.push(args);
  try {
    const [same, broken] = checkAgainst(tempDir(t));
    assert.equal(same?.ok, true);
    assert.equal(broken?.ok, false);
    assert.match(broken?.text ?? '', /OrderPlaced/);
    assert.match(broken?.text ?? '', /currency/);
    assert.equal(errors.length, 1, 'only the broken registry is printed');
  } finally {
    console.error = original;
  }
  assert.equal(schemas.definitions().length, 3);
});

test('the registry’s start-time checks the guide lists are errors at creation', () => {
  const schema = z.object({ id: z.string() });
  const cases = [
    [defineEvent({ type: 'A', version: 1, schema }), defineEvent({ type: 'A', version: 1, schema })],
    [defineEvent({ type: 'B', version: 3, schema, upcasters: { 1: (d: object) => d } })],
    [defineEvent({ type: 'C', version: 0, schema })],
  ];
  for (const definitions of cases) {
    assert.throws(() => createSchemaRegistry(definitions), isValidationError);
  }
});
