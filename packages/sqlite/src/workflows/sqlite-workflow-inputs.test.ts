import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { SchemaRegistry } from '@factline/core';
import { checkParksOnAnyFailureText } from '../../../core/src/workflows/fixtures/failure-text-flow.ts';
import { checkRecordedInputsUpcast } from '../../../core/src/workflows/fixtures/versioned-flow.ts';
import { getSqliteEventStore, getSqliteTimerStore, sqliteTimerProjection } from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-workflow-inputs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** One file opened by successive releases, each with its registry; the timers from the file's table. */
function releasesOf(path: string) {
  return async (schemas: SchemaRegistry) => {
    const store = getSqliteEventStore({ path, schemas, inlineProjections: [sqliteTimerProjection()] });
    return { store, timers: getSqliteTimerStore({ database: store.database }), close: () => store.close() };
  };
}

describe('sqlite workflows: inputs and schema versions', () => {
  for (const kind of ['message', 'event'] as const) {
    it(`gives evolve a recorded input, and decide a live one, at the current version (${kind} types)`, () =>
      checkRecordedInputsUpcast(kind, releasesOf(join(dir, `inputs-${kind}.db`))));
  }

  it('parks an instance whose decision fails with a NUL or a lone surrogate in its error, the text marked', async () => {
    const store = getSqliteEventStore({ path: join(dir, 'park-text.db') });
    try {
      await checkParksOnAnyFailureText(store, 'uploads');
    } finally {
      store.close();
    }
  });
});
