import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isConcurrencyError, isStreamDeletedError, isStreamNotFoundError, isValidationError } from '../errors/index.ts';
import {
  checkDeleteRequest,
  checkTruncateRequest,
  decideDelete,
  decideTruncate,
  liveVersion,
  streamInfoOf,
} from './stream-rules.ts';
import { defaultStoreLimits } from './validation.ts';

const live = { version: 5, truncatedBefore: 1, tombstoned: false };
const tombstone = { version: 5, truncatedBefore: 6, tombstoned: 1, recorded: 1 };

describe('stream rules', () => {
  it('deleteStream: a tombstone for hard, nothing for soft; refuses deleted, unknown and unexpected versions', () => {
    assert.deepEqual(decideDelete('s', live, { expected: 5, mode: 'hard' }), {
      version: 5,
      truncatedBefore: 6,
      tombstoned: true,
      recorded: true,
    });
    assert.equal(decideDelete('s', live, { expected: 'any', mode: 'soft' }), undefined);
    assert.throws(() => decideDelete('s', tombstone, { expected: 'any', mode: 'soft' }), isStreamDeletedError);
    assert.throws(() => decideDelete('s', undefined, { expected: 'any', mode: 'soft' }), isStreamNotFoundError);
    assert.throws(
      () => decideDelete('s', { ...live, version: 0 }, { expected: 'any', mode: 'hard' }),
      isStreamNotFoundError,
    );
    assert.throws(() => decideDelete('s', live, { expected: 4, mode: 'hard' }), isConcurrencyError);
  });

  it('truncateBefore: the new first version, at most version + 1; nothing when truncated as far already', () => {
    assert.equal(decideTruncate('s', live, 3), 3);
    assert.equal(decideTruncate('s', live, 99), 6);
    assert.equal(decideTruncate('s', { ...live, truncatedBefore: 4 }, 3), undefined);
    assert.equal(decideTruncate('s', { ...live, truncatedBefore: 4 }, 4), undefined);
    assert.throws(() => decideTruncate('s', tombstone, 2), isStreamDeletedError);
    assert.throws(() => decideTruncate('s', undefined, 2), isStreamNotFoundError);
  });

  it('checks the arguments of both', () => {
    assert.deepEqual(checkDeleteRequest('s', undefined, defaultStoreLimits), { expected: 'any', mode: 'soft' });
    assert.throws(() => checkDeleteRequest('s', { mode: 'gone' }, defaultStoreLimits), isValidationError);
    assert.throws(() => checkDeleteRequest('', undefined, defaultStoreLimits), isValidationError);
    assert.equal(checkTruncateRequest('s', 2, defaultStoreLimits), 2);
    assert.throws(() => checkTruncateRequest('s', 0, defaultStoreLimits), isValidationError);
  });

  it('liveVersion and streamInfoOf read SQLite 0/1 flags as booleans', () => {
    assert.equal(liveVersion('s', undefined), 0);
    assert.equal(liveVersion('s', { ...live, tombstoned: 0 }), 5);
    assert.throws(() => liveVersion('s', tombstone), isStreamDeletedError);
    assert.equal(streamInfoOf('s', undefined), undefined);
    assert.equal(streamInfoOf('s', { version: 0, truncatedBefore: 1, tombstoned: 0, recorded: 0 }), undefined);
    assert.deepEqual(streamInfoOf('s', tombstone), {
      streamId: 's',
      exists: false,
      version: 5,
      truncatedBefore: 6,
      tombstoned: true,
    });
  });
});
