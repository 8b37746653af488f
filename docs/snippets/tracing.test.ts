import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { waitUntil } from '@factline/core/testing';
import { orderFlow, printTrace } from './tracing.ts';

/** Ids, instants and relative times vary from run to run: compare the rest. */
const normalize = (text: string) =>
  text
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '<time>')
    .replace(/\+\d+ ms/g, '+<n> ms')
    .replace(/#\d+/g, '#<n>')
    // Groups handle concurrently: compare the lines and their depth, not the order of siblings.
    .replace(/[├└]─/g, '*-')
    .replace(/│/g, ' ')
    .split('\n')
    .sort();

test('the example tree in docs/observability.md is what renderTraceTree prints for the snippet’s flow', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-trace-doc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const flow = await orderFlow(join(dir, 'shop.db'));
  try {
    const { tree, text } = await waitUntil(async () => {
      const traced = await printTrace(flow.database);
      return traced.text.includes('handled by shipping') && traced.text.includes('dead-lettered by billing') && traced;
    }, 'the order handled by shipping and dead-lettered by billing');
    assert.equal(tree.found, true);
    const doc = readFileSync(new URL('../observability.md', import.meta.url), 'utf8');
    const shown = /<!-- trace-output -->\n```text\n([\s\S]*?)\n```/.exec(doc)?.[1];
    assert.ok(shown, 'docs/observability.md has a ```text block after <!-- trace-output -->');
    assert.deepEqual(normalize(shown), normalize(text));
  } finally {
    await flow.close();
  }
});
