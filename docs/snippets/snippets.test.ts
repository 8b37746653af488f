import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dropSchema, postgresUnavailable, postgresUrl } from '../../packages/postgres/src/fixtures/server.ts';
import { postgresStore } from './postgres-store.ts';
import { quickStart } from './quick-start.ts';
import { billing } from './sql-inbox.ts';

const root = new URL('../../', import.meta.url);

/** Every `<!-- snippet: path -->` block in a markdown file must equal that file. */
function checkEmbeddedSnippets(markdownPath: string): number {
  const markdown = readFileSync(new URL(markdownPath, root), 'utf8');
  const blocks = [...markdown.matchAll(/<!-- snippet: (\S+) -->\n```ts\n([\s\S]*?)```/g)];
  for (const [, path, code] of blocks) {
    assert.equal(code, readFileSync(new URL(path as string, root), 'utf8'), `${markdownPath} embeds a stale ${path}`);
  }
  return blocks.length;
}

test('the README quick-start snippet runs: append, decide, read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-quickstart-'));
  const logged: unknown[][] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => logged.push(args);
  try {
    const { state, version, events } = await quickStart(join(dir, 'shop.db'));
    assert.deepEqual(state, { items: ['tea'], open: false });
    assert.equal(version, 2);
    assert.deepEqual(
      events.map((e) => e.type),
      ['ItemAdded', 'CheckedOut'],
    );
    assert.deepEqual(logged, [
      [1, 'cart-1', 'ItemAdded'],
      [2, 'cart-1', 'CheckedOut'],
    ]);
  } finally {
    console.log = original;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('docs embed their snippets verbatim', () => {
  assert.ok(checkEmbeddedSnippets('README.md') >= 1);
  for (const doc of ['docs/event-store.md', 'docs/postgres.md']) checkEmbeddedSnippets(doc);
  assert.equal(checkEmbeddedSnippets('docs/messaging.md'), 1);
});

test('the PostgreSQL snippet runs: append, then resume readAll from a checkpoint', async (t) => {
  const skip = await postgresUnavailable();
  if (skip) return t.skip(skip);
  const schema = `t_snippet_${process.pid}`;
  try {
    const checkpoint = await postgresStore(postgresUrl, schema);
    assert.ok(checkpoint >= 1);
  } finally {
    await dropSchema(schema);
  }
});

test('the SQL inbox snippet runs: a message delivered twice is invoiced once', async (t) => {
  const skip = await postgresUnavailable();
  if (skip) return t.skip(skip);
  const schema = `t_inbox_snippet_${process.pid}`;
  try {
    assert.deepEqual(await billing(postgresUrl, schema), [{ order_id: 'order-7', total: 30 }]);
  } finally {
    await dropSchema(schema);
  }
});
