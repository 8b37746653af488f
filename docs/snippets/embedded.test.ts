import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** The markdown files whose TypeScript blocks must come from docs/snippets. */
const markdownFiles = [
  'README.md',
  ...readdirSync(new URL('docs/', root))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

interface Block {
  line: number;
  /** `docs/snippets/x.ts` or `docs/snippets/x.ts#region`; undefined when the marker is missing. */
  source: string | undefined;
  code: string;
}

/** Every ```ts block of a markdown file, with the snippet marker on the line before it (if any). */
export function tsBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(ts|typescript|tsx)\s*$/.exec(lines[i] as string);
    if (!open) continue;
    const indent = (open[1] as string).length;
    const marker = /^\s*<!-- snippet: (\S+) -->\s*$/.exec(lines[i - 1] ?? '');
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j] as string); j++) body.push(lines[j] as string);
    // A block inside a list item is indented with it: compare without that indent.
    blocks.push({ line: i + 1, source: marker?.[1], code: body.map((l) => l.slice(indent)).join('\n') });
    i = j;
  }
  return blocks;
}

const isMarker = (line: string) => /^\s*\/\/ #(end)?region\b/.test(line);

/** The lines of `name`'s region (`// #region name` to its `// #endregion`), dedented, without region markers. */
export function region(source: string, name: string | undefined): string {
  const lines = source.replace(/\n$/, '').split('\n');
  let picked = lines;
  if (name !== undefined) {
    const start = lines.findIndex((l) => new RegExp(`^\\s*// #region ${name}\\s*$`).test(l));
    if (start < 0) throw new Error(`no region "${name}"`);
    let depth = 0;
    let end = start;
    for (; end < lines.length; end++) {
      if (/^\s*\/\/ #region\b/.test(lines[end] as string)) depth++;
      if (/^\s*\/\/ #endregion\b/.test(lines[end] as string) && --depth === 0) break;
    }
    if (end === lines.length) throw new Error(`region "${name}" has no #endregion`);
    picked = lines.slice(start + 1, end);
  }
  picked = picked.filter((l) => !isMarker(l));
  const indent = Math.min(
    ...picked.filter((l) => l.trim() !== '').map((l) => (/^ */.exec(l) as RegExpExecArray)[0].length),
  );
  return picked.map((l) => l.slice(indent)).join('\n');
}

test('region() takes a nested region dedented and drops region markers', () => {
  const file = [
    'export function f() {',
    '  // #region outer',
    '  const a = 1;',
    '  // #region inner',
    '  if (a) {',
    '    return a;',
    '  }',
    '  // #endregion',
    '  // #endregion',
    '}',
    '',
  ].join('\n');
  assert.equal(region(file, 'inner'), 'if (a) {\n  return a;\n}');
  assert.equal(region(file, 'outer'), 'const a = 1;\nif (a) {\n  return a;\n}');
  assert.equal(region(file, undefined), file.replace(/ {2}\/\/ #(end)?region.*\n/g, '').replace(/\n$/, ''));
  assert.throws(() => region(file, 'missing'), /no region "missing"/);
});

test('tsBlocks() finds marked, unmarked and list-indented blocks', () => {
  const markdown = [
    '<!-- snippet: docs/snippets/a.ts#one -->',
    '```ts',
    'const one = 1;',
    '```',
    '```ts',
    'bare();',
    '```',
    '- item',
    '  <!-- snippet: docs/snippets/b.ts -->',
    '  ```ts',
    '  nested();',
    '  ```',
    '```sh',
    'npm test',
    '```',
  ].join('\n');
  assert.deepEqual(tsBlocks(markdown), [
    { line: 2, source: 'docs/snippets/a.ts#one', code: 'const one = 1;' },
    { line: 5, source: undefined, code: 'bare();' },
    { line: 10, source: 'docs/snippets/b.ts', code: 'nested();' },
  ]);
});

test('every TypeScript block in README.md and docs/ is a region of a tested file in docs/snippets', () => {
  let count = 0;
  for (const file of markdownFiles) {
    for (const block of tsBlocks(read(file))) {
      count++;
      const where = `${file}:${block.line}`;
      assert.ok(block.source, `${where}: a \`\`\`ts block needs a <!-- snippet: docs/snippets/file.ts#region --> line`);
      const [path, name] = block.source.split('#') as [string, string | undefined];
      assert.match(path, /^docs\/snippets\/[\w-]+\.ts$/, `${where}: snippets live in docs/snippets/`);
      assert.ok(existsSync(new URL(path, root)), `${where}: ${path} does not exist`);
      assert.ok(!path.endsWith('.test.ts'), `${where}: embed the snippet, not its test`);
      assert.equal(block.code, region(read(path), name), `${where} differs from ${block.source}`);
    }
  }
  assert.ok(count >= 17, `only ${count} blocks found`);
});

test('every snippet file is run by a test in docs/snippets', () => {
  const dir = new URL('docs/snippets/', root);
  const names = readdirSync(dir);
  const tests = names.filter((n) => n.endsWith('.test.ts')).map((n) => read(`docs/snippets/${n}`));
  for (const name of names.filter((n) => n.endsWith('.ts') && !n.endsWith('.test.ts'))) {
    const imported = tests.some((t) => t.includes(`from './${name}'`));
    assert.ok(imported, `docs/snippets/${name} is imported by no test`);
  }
});
