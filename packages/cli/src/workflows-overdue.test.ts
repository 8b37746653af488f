import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runFactline, runJson } from './fixtures/run-factline.ts';
import { fillOverdueShipping } from './fixtures/workflow-database.ts';
import type { WorkflowInstanceSummary } from './workflows/instance-summary.ts';

let dir = '';
let db = '';
const run = (...args: string[]) => runFactline(args, { db });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'factline-cli-overdue-'));
  db = join(dir, 'shipping.db');
  await fillOverdueShipping(db);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('factline workflows on timers no runner fired', () => {
  it('ls counts the timers overdue by more than a minute and says what fires them', async () => {
    const listed = await runJson<{ instances: WorkflowInstanceSummary[] }>(['workflows', 'ls'], { db });
    assert.deepEqual(
      listed.instances.map((s) => [s.instanceId, s.timers.length, s.overdueTimers]),
      [
        ['B1', 1, 1],
        ['B2', 1, 0],
      ],
    );
    const text = await run('workflows', 'ls');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^shipping +B1 +running +3 +OrderPaid \S+ +1 \(1 overdue\)$/m);
    assert.match(text.stdout, /^shipping +B2 +running +3 +OrderPaid \S+ +1$/m);
    assert.match(text.stdout, /\noverdue: shipping-B1 delivery due \S+Z \(1 d ago\): ShippingLate\n/);
    assert.match(
      text.stdout,
      /\n1 timer not fired a minute past its due time: timers fire only while a timer runner runs/,
    );
    assert.doesNotMatch(text.stdout, /overdue: shipping-B2/);
  });

  it('show marks each overdue timer', async () => {
    const late = await run('workflows', 'show', 'shipping', 'B1');
    assert.equal(late.code, 0, late.stderr);
    assert.match(late.stdout, /\ntimers {2}delivery due \S+Z: ShippingLate \(overdue by 1 d\)\n/);
    const onTime = await run('workflows', 'show', 'shipping', 'B2');
    assert.match(onTime.stdout, /\ntimers {2}delivery due \S+Z: ShippingLate\n/);
  });
});
