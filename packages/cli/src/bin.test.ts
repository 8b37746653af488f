import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { runFactline } from './fixtures/run-factline.ts';
import type { SchemaCheckReport } from './schema/report.ts';

const workspaceModules = fileURLToPath(new URL('../../../node_modules', import.meta.url));
let project = '';

before(() => {
  project = mkdtempSync(join(tmpdir(), 'factline-cli-'));
  // The project's own node_modules, as an app that installed zod and tsx has.
  symlinkSync(workspaceModules, join(project, 'node_modules'), 'dir');
});
after(() => rmSync(project, { recursive: true, force: true }));

/** Runs the bin from source in the project folder. */
const factline = (...args: string[]) => runFactline(args, { cwd: project });

function writeRegistry(orderPlaced: string) {
  writeFileSync(
    join(project, 'registry.ts'),
    `import { z } from 'zod';

export const registry = {
  definitions: () => [
    { kind: 'event' as const, type: 'OrderPlaced', version: 1, schema: ${orderPlaced} },
    { kind: 'message' as const, type: 'ShipOrder', version: 1, schema: z.object({ orderId: z.string() }) },
  ],
};
`,
  );
}

describe('the factline bin', () => {
  it('snapshots a registry, passes the check, then fails it with a report once a field goes', async () => {
    writeRegistry('z.object({ orderId: z.string(), total: z.number() })');
    const snapshot = await factline('schema', 'snapshot', '--registry', 'registry.ts', '--dir', 'schemas');
    assert.equal(snapshot.code, 0, snapshot.stderr);
    assert.match(snapshot.stdout, /wrote events\/OrderPlaced\.v1\.json/);
    assert.deepEqual(readdirSync(join(project, 'schemas')).sort(), ['events', 'messages']);

    const passing = await factline('schema', 'check', '--registry', 'registry.ts');
    assert.equal(passing.code, 0, passing.stderr);
    assert.match(passing.stdout, /Schemas are compatible with the snapshot/);

    writeRegistry('z.object({ orderId: z.string() })');
    const failing = await factline('schema', 'check', '--registry', 'registry.ts');
    assert.equal(failing.code, 1);
    assert.match(failing.stdout, /event OrderPlaced v1\n {4}field-removed at \$\.total: field 'total' was removed/);

    const json = await factline('schema', 'check', '--registry', 'registry.ts', '--json');
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout) as SchemaCheckReport;
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.problems.map((p) => [p.kind, p.type, p.rule, p.path]),
      [['event', 'OrderPlaced', 'field-removed', '$.total']],
    );

    const refused = await factline('schema', 'snapshot', '--registry', 'registry.ts');
    assert.equal(refused.code, 1, 'a breaking change is not recorded over its version');
    assert.match(refused.stdout, /Snapshot not written/);
    assert.equal((await factline('schema', 'check', '--registry', 'registry.ts')).code, 1);
  });

  it('loads a JavaScript module exporting an array of definitions as `schemas`', async () => {
    writeFileSync(
      join(project, 'schemas.mjs'),
      `import { z } from 'zod';
export const schemas = [{ kind: 'event', type: 'Paid', version: 1, schema: z.object({ amount: z.number() }) }];
`,
    );
    const run = await factline('schema', 'snapshot', '--registry', 'schemas.mjs', '--dir', 'js-schemas');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /wrote events\/Paid\.v1\.json/);
  });

  it('exits 2 with one line on a usage or load error', async () => {
    writeFileSync(join(project, 'empty.mjs'), 'export const nothing = 1;\n');
    writeFileSync(join(project, 'broken.mjs'), 'throw new Error("registry exploded");\n');
    const cases: [string[], RegExp][] = [
      [['schema', 'check'], /^error: required option '--registry <module>' not specified$/],
      [['schema', 'check', '--registry', 'registry.ts', '--colour'], /^error: unknown option '--colour'/],
      [['schema', 'check', '--registry', 'missing.ts'], /^factline: --registry missing\.ts: no such file/],
      [['schema', 'check', '--registry', 'empty.mjs'], /^factline: empty\.mjs exports no registry/],
      [['schema', 'check', '--registry', 'broken.mjs'], /^factline: cannot load broken\.mjs: registry exploded$/],
      [
        ['schema', 'check', '--registry', 'registry.ts', '--dir', 'nowhere'],
        /^factline: .*nowhere: is not a schema snapshot folder/,
      ],
    ];
    for (const [args, expected] of cases) {
      const run = await factline(...args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.equal(run.stderr.trimEnd().split('\n').length, 1, `one line: ${run.stderr}`);
      assert.match(run.stderr.trimEnd(), expected);
    }
  });

  it('Ctrl-C ends a command that does not follow it at once, with exit code 130', async () => {
    // A registry module that never finishes loading (it keeps a timer, so the process has work left).
    const marker = join(project, 'hang-loaded');
    writeFileSync(
      join(project, 'hang.mts'),
      `import { writeFileSync } from 'node:fs';
setInterval(() => undefined, 1000);
writeFileSync(${JSON.stringify(marker)}, 'loading');
await new Promise(() => undefined);
export const registry = [];
`,
    );
    const tsx = import.meta.resolve('tsx');
    const bin = fileURLToPath(new URL('./bin.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      ['--conditions=factline-source', '--import', tsx, bin, 'schema', 'check', '--registry', 'hang.mts'],
      { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitUntil(() => existsSync(marker), 'the CLI loading the module', 30_000);
      child.kill('SIGINT');
      assert.equal(await settlesWithin(exited, 10_000, 'the bin ending on the first Ctrl-C'), 130);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
