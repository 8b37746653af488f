import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fillOrdersDatabase } from './fixtures/orders-database.ts';
import { runFactline } from './fixtures/run-factline.ts';
import { fillWorkflowDatabase } from './fixtures/workflow-database.ts';

const doc = new URL('../../../docs/cli.md', import.meta.url);

interface Step {
  line: number;
  args: string[];
  expected: string[];
}

/** The `$ factline ...` steps of every ```sh block marked `marker`, in order. */
function transcriptSteps(markdown: string, marker = '<!-- transcript -->'): Step[] {
  const lines = markdown.split('\n');
  const steps: Step[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i] !== '```sh' || lines[i - 1] !== marker) continue;
    for (i += 1; i < lines.length && lines[i] !== '```'; i++) {
      const line = lines[i] as string;
      const command = /^\$ factline (.+)$/.exec(line);
      if (command) steps.push({ line: i + 1, args: (command[1] as string).split(' '), expected: [] });
      else steps.at(-1)?.expected.push(line);
    }
  }
  return steps;
}

const uuid = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g;

/**
 * A trace's sibling lines `├─ handled by <consumer>` in one order: consumers handle a message side by side, and
 * a trace lists them by when each handled it, which differs from run to run.
 */
const sortHandledSiblings = (text: string) => {
  const lines = text.split('\n');
  const sibling = /^([│ ]*├─ )handled by /;
  for (let i = 0; i < lines.length; ) {
    const prefix = sibling.exec(lines[i] as string)?.[1];
    let j = i + 1;
    while (prefix !== undefined && j < lines.length && sibling.exec(lines[j] as string)?.[1] === prefix) j++;
    if (j - i > 1) lines.splice(i, j - i, ...lines.slice(i, j).sort());
    i = j;
  }
  return lines.join('\n');
};

/** Output with what differs from run to run replaced: times, ages, offsets and ids, the order of side-by-side handlers. */
const normalize = (text: string) =>
  sortHandledSiblings(
    text
      .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, '<time>')
      .replace(/\b\d+ (ms|s|min|h|d)\b/g, '<age>')
      .replace(uuid, '<id>'),
  );

test('every transcript in docs/cli.md is what the bin prints on the orders reference system', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-cli-docs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'orders.db');
  await fillOrdersDatabase(db);
  const steps = transcriptSteps(readFileSync(doc, 'utf8'));
  assert.ok(steps.length >= 12, `only ${steps.length} steps found`);
  await replay(steps, { db });
});

test('every workflows transcript in docs/cli.md is what the bin prints on the shipping instances', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-cli-docs-workflows-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'app.db');
  await fillWorkflowDatabase(db);
  // The application's module of definitions, as the doc names it.
  mkdirSync(join(dir, 'src'));
  const definitions = fileURLToPath(new URL('./fixtures/shipping-workflow.ts', import.meta.url));
  writeFileSync(join(dir, 'src', 'workflows.ts'), `export { workflows } from ${JSON.stringify(definitions)};\n`);
  const steps = transcriptSteps(readFileSync(doc, 'utf8'), '<!-- transcript: workflows -->');
  assert.ok(steps.length >= 6, `only ${steps.length} steps found`);
  await replay(steps, { db, cwd: dir });
});

/** Runs each step's command and compares its output (normalized) and exit code with the doc's. */
async function replay(steps: readonly Step[], options: { db: string; cwd?: string }): Promise<void> {
  // The ids the doc shows, mapped to this run's as each output is compared.
  const ids = new Map<string, string>();
  for (const step of steps) {
    const args = step.args.map((a) => a.replace(uuid, (id) => ids.get(id) ?? id));
    const run = await runFactline(args, options);
    const where = `docs/cli.md:${step.line} factline ${step.args.join(' ')}`;
    const exit = /^\[exit (\d)\]$/.exec(step.expected.at(-1) ?? '');
    assert.equal(run.code, exit ? Number(exit[1]) : 0, `${where}: ${run.stderr}`);
    let expected = exit ? step.expected.slice(0, -1) : step.expected;
    let actual = `${run.stdout}${run.stderr}`.trimEnd().split('\n');
    // A last line … stands for the rest of the output (a stack), left out of the doc.
    if (expected.at(-1) === '…') {
      expected = expected.slice(0, -1);
      actual = actual.slice(0, expected.length);
    }
    assert.equal(normalize(actual.join('\n')), normalize(expected.join('\n')), where);
    const shown = expected.join('\n').match(uuid) ?? [];
    const printed = actual.join('\n').match(uuid) ?? [];
    for (const [i, id] of shown.entries()) ids.set(id, printed[i] as string);
  }
}
