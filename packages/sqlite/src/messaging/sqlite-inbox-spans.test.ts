import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkHandlerSpans } from '../../../core/src/testing/fixtures/handler-spans.ts';
import { getSqliteInbox, openSqliteDatabase } from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-inbox-spans-'));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const groupCommit of [true, false]) {
  test(`each handler runs under its own delivery's process span (${groupCommit ? 'group commit' : 'a commit per message'})`, async () => {
    const db = openSqliteDatabase(join(dir, `spans-${groupCommit}.db`));
    try {
      assert.equal(await checkHandlerSpans(getSqliteInbox({ database: db, groupCommit }), `spans-${groupCommit}`), 8);
    } finally {
      db.close();
    }
  });
}
