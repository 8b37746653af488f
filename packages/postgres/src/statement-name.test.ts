import assert from 'node:assert/strict';
import { test } from 'node:test';
import { statementName } from './statement-name.ts';

test('statement names stay within 63 bytes and distinct', () => {
  assert.equal(statementName('app', 'append-one'), 'factline:app:append-one');
  const schema = `s_${'x'.repeat(60)}`;
  const a = statementName(schema, 'consumer-mark');
  const b = statementName(schema, 'consumer-mark-ack', `"${schema}"`);
  for (const name of [a, b]) assert.ok(Buffer.byteLength(name) <= 63, name);
  assert.notEqual(a, b, 'two statements sharing a long prefix keep different names');
  assert.equal(statementName(schema, 'consumer-mark'), a, 'stable');
});
