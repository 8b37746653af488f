import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defineEvent } from '@factline/core';
import { checkSchemas, formatSchemaReport } from 'factline';
import { orderPlaced, orderPlacedV1, orderSchemas } from './schemas.ts';

/** The example's schema snapshot, written by `npm run schema:snapshot` and kept in the repository. */
const snapshotDir = fileURLToPath(new URL('../schemas', import.meta.url));
const exampleDir = fileURLToPath(new URL('..', import.meta.url));

test('the registry matches the committed schema snapshot: no problem, nothing left to record', () => {
  const report = checkSchemas(orderSchemas, snapshotDir);
  assert.deepEqual(report, { ok: true, problems: [], notices: [] });
});

test('the v1 shape the upcaster reads is the OrderPlaced v1 the snapshot recorded', () => {
  const v1 = { kind: 'event', type: 'OrderPlaced', version: 1, schema: orderPlacedV1 } as const;
  assert.deepEqual(checkSchemas([v1, ...orderSchemas.definitions()], snapshotDir), {
    ok: true,
    problems: [],
    notices: [],
  });
});

test('a field removed from OrderPlaced at the same version is reported as breaking', () => {
  // The edit a reviewer must catch: `currency` dropped, the version left at 2.
  const edited = defineEvent({ ...orderPlaced, schema: orderPlaced.schema.omit({ currency: true }) });
  const definitions = orderSchemas.definitions().map((d) => (d.type === 'OrderPlaced' ? edited : d));
  const report = checkSchemas(definitions, snapshotDir);
  assert.equal(report.ok, false);
  assert.deepEqual(
    report.problems.map((p) => [p.type, p.version, p.rule, p.path]),
    [['OrderPlaced', 2, 'field-removed', '$.currency']],
  );
  assert.match(formatSchemaReport(report), /OrderPlaced.*currency/s);
});

test('npm run schema:check runs the factline CLI on the registry and exits 0', async () => {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const child = spawn(npm, ['run', '--silent', 'schema:check'], { cwd: exampleDir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, output);
  assert.match(output, /compatible with the snapshot/);
});
