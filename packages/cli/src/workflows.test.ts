import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Sqlite from 'better-sqlite3';
import { runFactline, runJson } from './fixtures/run-factline.ts';
import { firstRelease } from './fixtures/shipping-schemas.ts';
import { breakShippingRecordJson, corruptShippingRecords, fillWorkflowDatabase } from './fixtures/workflow-database.ts';
import type { WorkflowInstanceSummary } from './workflows/instance-summary.ts';

const definitions = fileURLToPath(new URL('./fixtures/shipping-workflow.ts', import.meta.url));
let dir = '';
let db = '';
const factline = (...args: string[]) => runFactline(args, { db });
const json = <T>(...args: string[]) => runJson<T>(args, { db });
type Shown = WorkflowInstanceSummary & { records: { type: string; data: Record<string, unknown> }[] };
type Listed = { instances: WorkflowInstanceSummary[]; next: string | null };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'factline-cli-workflows-'));
  db = join(dir, 'shipping.db');
  await fillWorkflowDatabase(db);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const pendingTimers = () => {
  const file = new Sqlite(db, { readonly: true });
  try {
    return file.prepare('SELECT stream_id FROM factline_workflow_timers ORDER BY stream_id').pluck().all();
  } finally {
    file.close();
  }
};

describe('factline workflows on a SQLite file', () => {
  it('ls tells each instance its state, version, last input and pending timers, filtered by state and name', async () => {
    const { instances: all, next } = await json<Listed>('workflows', 'ls');
    assert.equal(next, null);
    assert.deepEqual(
      all.map((s) => [s.instanceId, s.state, s.version, s.lastInput?.type, s.timers.length]),
      [
        ['A1', 'running', 5, 'OrderPacked', 1],
        ['A2', 'completed', 8, 'OrderDelivered', 0],
        ['A3', 'parked', 5, 'OrderPacked', 1],
        ['A4', 'running', 3, 'OrderPaid', 1],
      ],
    );
    const parked = await json<Listed>('workflows', 'ls', '--state', 'parked');
    assert.deepEqual(
      parked.instances.map((s) => s.streamId),
      ['shipping-A3'],
    );
    assert.deepEqual(await json('workflows', 'ls', '--name', 'billing'), { instances: [], next: null });
    const text = await factline('workflows', 'ls', '--state', 'running');
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /^workflow +instance +state +version +last input +timers\nshipping +A1 +running +5 +OrderPacked /,
    );
    const bad = await factline('workflows', 'ls', '--state', 'asleep');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--state must be running, parked, completed, cancelled, got 'asleep'/);
  });

  it('ls pages by instance stream id: --limit per page, --after the last of the previous one, state filter included', async () => {
    const first = await json<Listed>('workflows', 'ls', '--limit', '2');
    assert.deepEqual(
      first.instances.map((s) => s.instanceId),
      ['A1', 'A2'],
    );
    assert.equal(first.next, 'shipping-A2');
    const second = await json<Listed>('workflows', 'ls', '--limit', '2', '--after', 'shipping-A2');
    assert.deepEqual(
      second.instances.map((s) => s.instanceId),
      ['A3', 'A4'],
    );
    const last = await json<Listed>('workflows', 'ls', '--limit', '2', '--after', 'shipping-A4');
    assert.deepEqual(last, { instances: [], next: null });
    // A filtered page skips what does not match: the next running instance after A1 is A4.
    const running = await json<Listed>(
      'workflows',
      'ls',
      '--state',
      'running',
      '--limit',
      '1',
      '--after',
      'shipping-A1',
    );
    assert.deepEqual(
      running.instances.map((s) => s.instanceId),
      ['A4'],
    );
    const text = await factline('workflows', 'ls', '--limit', '3');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /\nmore: --after shipping-A3\n$/);
  });

  it('show prints the records, the pending timer, and the park with the input that failed; unknown exits 1', async () => {
    const shown = await json<Shown>('workflows', 'show', 'shipping', 'A3');
    assert.equal(shown.state, 'parked');
    assert.deepEqual(
      shown.records.map((r) => r.type),
      ['$workflow.input', '$workflow.sent', '$workflow.timer-scheduled', '$workflow.parked', '$workflow.deferred'],
    );
    assert.equal(shown.parked?.input.type, 'AddressChanged');
    assert.deepEqual(shown.parked?.input.data, { orderId: 'A3', address: '12 Quay St <back door>' });
    assert.equal(shown.parked?.error.name, 'NonRetryableError');
    assert.equal(shown.parked?.pending, 1);
    assert.deepEqual(
      shown.timers.map((t) => [t.token, t.messageType]),
      [['delivery', 'ShippingLate']],
    );
    const text = await factline('workflows', 'show', 'shipping', 'A3');
    assert.match(text.stdout, /^shipping-A3 \(parked\) version 5\n#1 .* input {2}OrderPaid \{"orderId":"A3"\}\n/);
    assert.match(text.stdout, /\nerror {3}NonRetryableError: the carrier refuses the address 12 Quay St <back door>$/m);
    assert.match(text.stdout, /\nkept {4}1 input received since, for the retry\n$/);
    const missing = await factline('workflows', 'show', 'shipping', 'A9');
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, "factline: no instance 'A9' of workflow 'shipping'\n");
  });

  it('retry needs the definitions and a confirmation, refuses an instance not parked, and parks again while decide still fails', async () => {
    const noModule = await factline('workflows', 'retry', 'shipping', 'A3', '--yes');
    assert.equal(noModule.code, 2);
    assert.match(noModule.stderr, /give --workflows <module>/);
    const unconfirmed = await factline('workflows', 'retry', 'shipping', 'A3', '--workflows', definitions);
    assert.equal(unconfirmed.code, 2);
    assert.match(
      unconfirmed.stderr,
      /refusing to retry shipping-A3 \(2 inputs\) without a terminal to confirm on: add --yes/,
    );
    const running = await factline('workflows', 'retry', 'shipping', 'A1', '--workflows', definitions, '--yes');
    assert.equal(running.code, 1);
    assert.match(running.stderr, /cannot retry shipping-A1: it is running, not parked/);
    const unknown = await factline('workflows', 'retry', 'billing', 'A3', '--workflows', definitions, '--yes');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /exports no workflow named 'billing' \(it has shipping\)/);
    // The release that still refuses the address: the retry records the park again.
    const stillBroken = join(dir, 'old-release.ts');
    writeFileSync(
      stillBroken,
      `import { defineShipping } from ${JSON.stringify(definitions)};\nexport const workflows = [defineShipping(true)];\n`,
    );
    const again = await factline('workflows', 'retry', 'shipping', 'A3', '--workflows', stillBroken, '--yes', '--json');
    assert.equal(again.code, 1, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), { streamId: 'shipping-A3', outcome: 'parked' });
    const shown = await json<Shown>('workflows', 'show', 'shipping', 'A3');
    assert.equal(shown.state, 'parked');
    assert.equal(shown.parked?.pending, 1);
  });

  it('retry with the fixed definitions resumes the instance: both kept inputs decided, their output recorded', async () => {
    const run = await factline('workflows', 'retry', 'shipping', 'A3', '--workflows', definitions, '--yes');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'shipping-A3 resumed\n');
    const shown = await json<Shown>('workflows', 'show', 'shipping', 'A3');
    assert.equal(shown.state, 'running');
    assert.equal(shown.parked, null);
    const sent = shown.records.filter((r) => r.type === '$workflow.sent').map((r) => r.data.message);
    assert.deepEqual(sent.at(-1), {
      type: 'ShipOrder',
      data: { orderId: 'A3', address: '12 Quay St <back door>' },
    });
  });

  it('cancel ends a running instance and drops its timer from the table; a completed one exits 1', async () => {
    assert.deepEqual(pendingTimers(), ['shipping-A1', 'shipping-A3', 'shipping-A4']);
    const run = await factline('workflows', 'cancel', 'shipping', 'A4', '--reason', 'customer asked', '--yes');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'shipping-A4 cancelled\n');
    assert.deepEqual(pendingTimers(), ['shipping-A1', 'shipping-A3']);
    const shown = await json<Shown>('workflows', 'show', 'shipping', 'A4');
    assert.equal(shown.state, 'cancelled');
    assert.deepEqual(shown.records.at(-1), { ...shown.records.at(-1), data: { reason: 'customer asked' } });
    const completed = await factline('workflows', 'cancel', 'shipping', 'A2', '--yes');
    assert.equal(completed.code, 1);
    assert.equal(completed.stderr, 'factline: cannot cancel shipping-A2: it is completed already\n');
    const unconfirmed = await factline('workflows', 'cancel', 'shipping', 'A1');
    assert.equal(unconfirmed.code, 2);
    assert.deepEqual(pendingTimers(), ['shipping-A1', 'shipping-A3']);
  });
});

describe('factline workflows retry on instances recorded with schema versions', () => {
  const schemas = fileURLToPath(new URL('./fixtures/shipping-schemas.ts', import.meta.url));
  const lastSent = async (file: string) => {
    const shown = await runJson<Shown>(['workflows', 'show', 'shipping', 'A3'], { db: file });
    assert.equal(shown.state, 'running');
    return shown.records
      .filter((r) => r.type === '$workflow.sent')
      .map((r) => r.data.message)
      .at(-1);
  };
  const retry = async (file: string, ...extra: string[]) => {
    const run = await runFactline(
      ['workflows', 'retry', 'shipping', 'A3', '--workflows', definitions, ...extra, '--yes'],
      { db: file },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'shipping-A3 resumed\n');
  };

  it('with --registry decides the inputs upcast, as the application does; without, as they were recorded', async () => {
    const upcast = join(dir, 'versioned-upcast.db');
    const asRecorded = join(dir, 'versioned-as-recorded.db');
    await fillWorkflowDatabase(upcast, firstRelease);
    await fillWorkflowDatabase(asRecorded, firstRelease);
    await retry(upcast, '--registry', schemas);
    // The address as version 2 of AddressChanged reads it: the carrier's note apart.
    assert.deepEqual(await lastSent(upcast), { type: 'ShipOrder', data: { orderId: 'A3', address: '12 Quay St' } });
    await retry(asRecorded);
    assert.deepEqual(await lastSent(asRecorded), {
      type: 'ShipOrder',
      data: { orderId: 'A3', address: '12 Quay St <back door>' },
    });
  });

  it('takes a registry, an array of definitions or an object with definitions(); a module with none is a usage error', async () => {
    const shapes = join(dir, 'registry-shapes.ts');
    writeFileSync(
      shapes,
      `import { registry } from ${JSON.stringify(schemas)};\nexport const schemas = { definitions: () => registry.definitions() };\n`,
    );
    const fromObject = join(dir, 'versioned-object.db');
    await fillWorkflowDatabase(fromObject, firstRelease);
    await retry(fromObject, '--registry', shapes);
    assert.deepEqual(await lastSent(fromObject), {
      type: 'ShipOrder',
      data: { orderId: 'A3', address: '12 Quay St' },
    });
    const refused = await runFactline(
      ['workflows', 'retry', 'shipping', 'A3', '--workflows', definitions, '--registry', definitions, '--yes'],
      { db: fromObject },
    );
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /exports no registry/);
  });
});

describe('factline workflows on instances with a record that cannot be read', () => {
  let corrupt = '';
  const run = (...args: string[]) => runFactline(args, { db: corrupt });
  type Unreadable = { unreadable: { version: number; position: number; type: string; problem: string } | null };
  before(async () => {
    corrupt = join(dir, 'corrupt.db');
    await fillWorkflowDatabase(corrupt);
    corruptShippingRecords(corrupt);
  });

  it('ls lists each such instance as unreadable, naming the record and what is wrong, and every other one as before', async () => {
    const listed = await runJson<{ instances: (WorkflowInstanceSummary & Unreadable)[] }>(['workflows', 'ls'], {
      db: corrupt,
    });
    assert.deepEqual(
      listed.instances.map((s) => [s.instanceId, s.state, s.version, s.lastInput?.type, s.timers.length]),
      [
        ['A1', 'running', 5, 'OrderPaid', 1],
        ['A2', 'completed', 8, 'OrderDelivered', 0],
        ['A3', 'parked', 5, 'OrderPacked', 1],
        ['A4', 'running', 3, 'OrderPaid', 0],
      ],
    );
    assert.deepEqual(
      listed.instances.map((s) => s.unreadable && { ...s.unreadable, position: 0 }),
      [
        { version: 4, position: 0, type: '$workflow.input', problem: 'data must be an object, got null' },
        null,
        { version: 4, position: 0, type: '$workflow.parked', problem: 'data.error must be an object, got undefined' },
        {
          version: 3,
          position: 0,
          type: '$workflow.timer-scheduled',
          problem: "data.dueAt must be a time in ms since the epoch, got 'tomorrow'",
        },
      ],
    );
    const parked = await runJson<{ instances: WorkflowInstanceSummary[] }>(['workflows', 'ls', '--state', 'parked'], {
      db: corrupt,
    });
    assert.deepEqual(
      parked.instances.map((s) => s.streamId),
      ['shipping-A3'],
    );
    const text = await run('workflows', 'ls');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^shipping +A2 +completed +8 +OrderDelivered /m);
    assert.match(
      text.stdout,
      /\nunreadable: shipping-A1 record #4 \(\$workflow\.input, position \d+\): data must be an object, got null\n/,
    );
    assert.match(
      text.stdout,
      /\nunreadable: shipping-A3 record #4 \(\$workflow\.parked, position \d+\): data\.error must/,
    );
    assert.match(
      text.stdout,
      /\nunreadable: shipping-A4 record #3 \(\$workflow\.timer-scheduled, position \d+\): data\.dueAt/,
    );
  });

  it('show prints what it can read of such an instance, each record that cannot be read marked with why', async () => {
    const shown = await runJson<Shown & Unreadable>(['workflows', 'show', 'shipping', 'A3'], { db: corrupt });
    assert.equal(shown.state, 'parked');
    assert.equal(shown.unreadable?.problem, 'data.error must be an object, got undefined');
    assert.equal(shown.records.length, 5);
    const text = await run('workflows', 'show', 'shipping', 'A3');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^shipping-A3 \(parked\) version 5\n/);
    assert.match(
      text.stdout,
      /\n#4 .* parked {2}\{"input":.*\} {2}unreadable: data\.error must be an object, got undefined\n/,
    );
    assert.match(text.stdout, /\n#5 .* deferred {2}OrderPacked \{"orderId":"A3"\}\n/);
    assert.match(
      text.stdout,
      /\nunreadable {2}record #4 \(\$workflow\.parked, position \d+\): data\.error must be an object, got undefined\n$/,
    );
    const timer = await run('workflows', 'show', 'shipping', 'A4');
    assert.equal(timer.code, 0, timer.stderr);
    assert.match(
      timer.stdout,
      /\n#3 .* timer-scheduled {2}\{"token":"delivery","dueAt":"tomorrow",.*unreadable: data\.dueAt/,
    );
    assert.match(timer.stdout, /\ntimers {2}none\n/);
    const input = await run('workflows', 'show', 'shipping', 'A1');
    assert.equal(input.code, 0, input.stderr);
    assert.match(input.stdout, /\n#4 .* input {2}null {2}unreadable: data must be an object, got null\n/);
  });

  it('retry of such an instance refuses (exit 2) and records nothing', async () => {
    const refused = await run('workflows', 'retry', 'shipping', 'A3', '--workflows', definitions, '--yes');
    assert.equal(refused.code, 2);
    assert.equal(
      refused.stderr.replace(/position \d+/, 'position N'),
      'factline: cannot retry shipping-A3: its record #4 ($workflow.parked, position N) cannot be read: data.error must be an object, got undefined\n',
    );
    const json = await run('workflows', 'retry', 'shipping', 'A3', '--workflows', definitions, '--yes', '--json');
    assert.equal(json.code, 2);
    assert.equal(json.stdout, '');
    const shown = await runJson<Shown>(['workflows', 'show', 'shipping', 'A3'], { db: corrupt });
    assert.equal(shown.version, 5);
  });

  it('cancel ends such an instance, also one whose records the handler cannot fold', async () => {
    const cancelled = await run('workflows', 'cancel', 'shipping', 'A4', '--yes');
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(cancelled.stdout, 'shipping-A4 cancelled\n');
    const folded = await run('workflows', 'cancel', 'shipping', 'A1', '--yes');
    assert.equal(folded.code, 0, folded.stderr);
    assert.equal(folded.stdout, 'shipping-A1 cancelled\n');
    const shown = await runJson<Shown>(['workflows', 'show', 'shipping', 'A1'], { db: corrupt });
    assert.deepEqual([shown.state, shown.version], ['cancelled', 6]);
  });
});

describe('factline workflows on instances with a record whose row is not JSON', () => {
  let broken = '';
  const run = (...args: string[]) => runFactline(args, { db: broken });
  type Unreadable = { unreadable: { version: number; type: string; problem: string } | null };
  before(async () => {
    broken = join(dir, 'not-json.db');
    await fillWorkflowDatabase(broken);
    breakShippingRecordJson(broken);
  });

  it('ls lists each such instance as unreadable, naming the record and the column, and every other one as before', async () => {
    const listed = await runJson<{ instances: (WorkflowInstanceSummary & Unreadable)[] }>(['workflows', 'ls'], {
      db: broken,
    });
    assert.deepEqual(
      listed.instances.map((s) => [s.instanceId, s.state, s.version, s.lastInput?.type, s.timers.length]),
      [
        ['A1', 'running', 5, 'OrderPaid', 1],
        ['A2', 'completed', 8, 'OrderDelivered', 0],
        ['A3', 'parked', 5, 'OrderPacked', 1],
        ['A4', 'running', 3, 'OrderPaid', 1],
      ],
    );
    assert.deepEqual(
      listed.instances.map((s) => s.unreadable && [s.unreadable.version, s.unreadable.type]),
      [[4, '$workflow.input'], null, [4, '$workflow.parked'], null],
    );
    assert.match(listed.instances[0]?.unreadable?.problem ?? '', /^data is not JSON \(.+\)$/);
    assert.match(listed.instances[2]?.unreadable?.problem ?? '', /^metadata is not JSON \(.+\)$/);
    const text = await run('workflows', 'ls');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^shipping +A2 +completed +8 +OrderDelivered /m);
    assert.match(
      text.stdout,
      /\nunreadable: shipping-A1 record #4 \(\$workflow\.input, position \d+\): data is not JSON \(/,
    );
    assert.match(
      text.stdout,
      /\nunreadable: shipping-A3 record #4 \(\$workflow\.parked, position \d+\): metadata is not JSON \(/,
    );
  });

  it('show prints the row as stored, marked, beside the records that read', async () => {
    const shown = await runJson<Shown & Unreadable>(['workflows', 'show', 'shipping', 'A1'], { db: broken });
    assert.equal(shown.state, 'running');
    assert.equal(shown.records.length, 5);
    assert.equal(shown.records[3]?.data, '{"message": oops');
    const text = await run('workflows', 'show', 'shipping', 'A1');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /\n#4 .* input {2}"\{\\"message\\": oops" {2}unreadable: data is not JSON \(/);
    assert.match(text.stdout, /\n#5 .* sent {2}ShipOrder /);
    assert.match(text.stdout, /\nunreadable {2}record #4 \(\$workflow\.input, position \d+\): data is not JSON/);
    const stream = await run('streams', 'show', 'shipping-A1');
    assert.equal(stream.code, 0, stream.stderr);
    assert.match(
      stream.stdout,
      /\n#\d+ {2}shipping-A1@4 .* "\{\\"message\\": oops" {2}unreadable: data is not JSON \(/,
    );
  });

  it('retry of such an instance refuses (exit 2), cancel ends one', async () => {
    const refused = await run('workflows', 'retry', 'shipping', 'A3', '--workflows', definitions, '--yes');
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /^factline: cannot retry shipping-A3: its record #4 \(\$workflow\.parked, position \d+\) cannot be read: metadata is not JSON \(/,
    );
    const cancelled = await run('workflows', 'cancel', 'shipping', 'A1', '--yes');
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(cancelled.stdout, 'shipping-A1 cancelled\n');
    const shown = await runJson<Shown>(['workflows', 'show', 'shipping', 'A1'], { db: broken });
    assert.deepEqual([shown.state, shown.version, shown.timers], ['cancelled', 6, []]);
  });
});
