import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMessage, type DeadLetter } from '@factline/core';
import { getSqliteDeadLetterStore, getSqliteEventStore, openSqliteDatabase } from '@factline/sqlite';
import { printable } from './commands/context.ts';
import { runInProcess } from './fixtures/run-factline.ts';

describe('printable', () => {
  it('writes control characters (not a line break or a tab) and lone surrogates as \\uXXXX', () => {
    assert.equal(printable('a\u0000b\u001b[31mred\r\u007f\u0085'), 'a\\u0000b\\u001b[31mred\\u000d\\u007f\\u0085');
    assert.equal(printable('line\nnext\ttab é 😀'), 'line\nnext\ttab é 😀');
    assert.equal(printable('lone \ud800 and \udfff'), 'lone \\ud800 and \\udfff');
    // JSON output stays JSON with the same strings.
    const json = JSON.stringify({ type: 'T\u0085\u009b2J', id: 'x\ud800' });
    assert.deepEqual(JSON.parse(printable(json)), { type: 'T\u0085\u009b2J', id: 'x\ud800' });
  });
});

// A message another program wrote can carry any text: the operator's terminal gets no escape sequence from it.
describe('factline output of text other programs wrote', () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-printable-'));
  const file = join(dir, 'app.db');
  before(async () => {
    await getSqliteEventStore({ path: file }).close();
    const database = openSqliteDatabase(file);
    const message = createMessage({ type: 'Upload', key: 'k', data: {} });
    const record: DeadLetter = {
      id: 'd-1',
      consumer: 'billing',
      topic: 'uploads',
      // As a broker can hand it over: Factline's own publish refuses a NUL.
      message: { ...message, type: 'Upload\u001b]0;owned\u0007\u001b[2J', key: 'k\u0000ey' },
      error: { type: 'Error', message: 'bad \u001b[31mred\u001b[0m input' },
      reason: 'exhausted',
      attempts: 3,
      firstFailureAt: new Date('2026-01-01T00:00:00Z'),
      lastFailureAt: new Date('2026-01-01T00:00:00Z'),
      deadLetteredAt: new Date('2026-01-01T00:00:00Z'),
      redrives: [],
      state: 'dead',
    };
    await getSqliteDeadLetterStore({ database }).add(record);
    database.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const args of [
    ['dlq', 'ls'],
    ['dlq', 'show', 'd-1'],
    ['dlq', 'show', 'd-1', '--json'],
  ]) {
    it(`factline ${args.join(' ')}`, async () => {
      const result = await runInProcess([...args, '--db', `sqlite:${file}`], { cwd: dir });
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stdout, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
      assert.match(result.stdout, /Upload\\u001b\]0;owned\\u0007\\u001b\[2J/);
      if (args.includes('--json')) {
        const shown = JSON.parse(result.stdout) as DeadLetter;
        assert.equal(shown.message.type, 'Upload\u001b]0;owned\u0007\u001b[2J');
        assert.equal(shown.message.key, 'k\u0000ey');
      }
    });
  }
});
