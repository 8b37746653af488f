// Every public name is a promise: this test compares each package entry's
// export names with exports.snapshot.json, so adding or removing one is a
// reviewed diff. To accept a change, run
//   UPDATE_EXPORTS=1 node scripts/run-tests.mjs exports.test
// and commit the rewritten exports.snapshot.json with the change.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const packages = new URL('../../', import.meta.url);
const entries: Record<string, string> = {
  '@factline/core': 'core/src/index.ts',
  '@factline/core/adapter': 'core/src/adapter/index.ts',
  '@factline/core/testing': 'core/src/testing/index.ts',
  '@factline/sqlite': 'sqlite/src/index.ts',
  '@factline/postgres': 'postgres/src/index.ts',
  '@factline/redis': 'redis/src/index.ts',
  factline: 'cli/src/index.ts',
};
const snapshotFile = new URL('./exports.snapshot.json', import.meta.url);

/** Each entry's names, sorted: `name` for a value, `type Name` for a type only. */
function readExportNames(): Record<string, string[]> {
  const base = ts.readConfigFile(fileURLToPath(new URL('../tsconfig.base.json', packages)), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(base.config, ts.sys, fileURLToPath(new URL('..', packages)));
  const paths = Object.fromEntries(
    Object.entries(entries).map(([name, file]) => [name, fileURLToPath(new URL(file, packages))]),
  );
  const program = ts.createProgram(Object.values(paths), { ...options, noEmit: true });
  const checker = program.getTypeChecker();
  const result: Record<string, string[]> = {};
  for (const [name, path] of Object.entries(paths)) {
    const source = program.getSourceFile(path);
    const module = source && checker.getSymbolAtLocation(source);
    assert.ok(module, `${name}: ${path} is not a module`);
    result[name] = checker
      .getExportsOfModule(module)
      .map((symbol) => {
        const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
        return target.flags & ts.SymbolFlags.Value ? symbol.name : `type ${symbol.name}`;
      })
      .sort((a, b) => a.replace(/^type /, '').localeCompare(b.replace(/^type /, '')));
  }
  return result;
}

/** A readable account of what changed, one line per entry that differs. */
function describeChanges(expected: Record<string, string[]>, actual: Record<string, string[]>): string {
  const lines: string[] = [];
  for (const name of Object.keys(entries)) {
    const before = new Set(expected[name] ?? []);
    const after = new Set(actual[name] ?? []);
    const added = [...after].filter((n) => !before.has(n));
    const removed = [...before].filter((n) => !after.has(n));
    if (added.length > 0) lines.push(`${name} adds: ${added.join(', ')}`);
    if (removed.length > 0) lines.push(`${name} removes: ${removed.join(', ')}`);
  }
  return lines.join('\n');
}

describe('package entries export exactly the reviewed names', () => {
  const actual = readExportNames();

  it('matches exports.snapshot.json', () => {
    if (process.env.UPDATE_EXPORTS === '1') writeFileSync(snapshotFile, `${JSON.stringify(actual, null, 2)}\n`);
    const expected = JSON.parse(readFileSync(snapshotFile, 'utf8')) as Record<string, string[]>;
    const changes = describeChanges(expected, actual);
    assert.equal(
      changes,
      '',
      `export names changed:\n${changes}\nIf intended: UPDATE_EXPORTS=1 node scripts/run-tests.mjs exports.test, and commit the snapshot.`,
    );
  });

  it('lists the same values as the modules export at run time', async () => {
    for (const [name, file] of Object.entries(entries)) {
      const loaded = (await import(new URL(file, packages).href)) as Record<string, unknown>;
      const values = (actual[name] ?? []).filter((n) => !n.startsWith('type '));
      assert.deepEqual(Object.keys(loaded).sort(), [...values].sort(), name);
    }
  });

  it('keeps adapter-only helpers off the main entry', () => {
    const main = new Set(actual['@factline/core']);
    const shared = (actual['@factline/core/adapter'] ?? []).filter((n) => main.has(n));
    assert.deepEqual(shared, []);
  });
});
