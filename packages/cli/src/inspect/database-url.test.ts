import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CliError } from '../cli-error.ts';
import { parseDatabaseUrl, parseDeadLetterUrl } from './database-url.ts';

test('--app names a Redis application: refused with a database, FACTLINE_APP ignored there', () => {
  const refused = { name: CliError.name, message: '--app applies to a redis:// --db, or with a --transport, only' };
  assert.throws(() => parseDatabaseUrl('sqlite:./app.db', undefined, 'shop'), refused);
  assert.throws(() => parseDeadLetterUrl('postgres://db/app', undefined, 'shop'), refused);
  // FACTLINE_APP exported for a Redis application does not stop a command on a database.
  assert.deepEqual(parseDeadLetterUrl('sqlite:./app.db', undefined, undefined, 'shop'), {
    kind: 'sqlite',
    path: './app.db',
  });
  assert.deepEqual(parseDeadLetterUrl('redis://127.0.0.1:6379', undefined, 'billing', 'shop'), {
    kind: 'redis',
    url: 'redis://127.0.0.1:6379',
    application: 'billing',
  });
  assert.equal(
    (parseDeadLetterUrl('redis://127.0.0.1:6379', undefined, undefined, 'shop') as { application: string }).application,
    'shop',
  );
  assert.throws(() => parseDeadLetterUrl('redis://127.0.0.1:6379'), /a redis:\/\/ --db needs the application/);
  assert.throws(() => parseDeadLetterUrl('redis://127.0.0.1:6379', 'factline', 'shop'), /--schema applies/);
  assert.throws(
    () => parseDatabaseUrl('redis://u:secret@127.0.0.1:6379'),
    /redis:\/\/u:\*\*\*@127\.0\.0\.1:6379: Redis holds/,
  );
});

test('a --db of another kind is refused naming it without its secrets', () => {
  assert.throws(
    () => parseDatabaseUrl('mysql://app:s3cret@127.0.0.1:3306/shop'),
    (error: Error) => {
      assert.equal(error.message, '--db mysql://app:***@127.0.0.1:3306/shop: not a sqlite: path or postgres:// URL');
      return true;
    },
  );
  assert.throws(() => parseDatabaseUrl('mongodb://t0ken@db/shop'), /--db mongodb:\/\/\*\*\*@db\/shop: not a sqlite/);
});
