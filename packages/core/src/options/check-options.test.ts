import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidationError, ValidationError } from '../errors/index.ts';
import { checkOptions, describeValue } from './check-options.ts';

const spec = {
  name: 'non-empty-string',
  concurrency: 'positive-integer',
  busyTimeoutMs: 'non-negative-integer',
  mode: { oneOf: ['wait', 'dead-letter'] },
  handler: 'function',
  even: (v: unknown) => (typeof v === 'number' && v % 2 === 0 ? undefined : 'must be even'),
} as const;

const issuesOf = (work: () => unknown) => {
  try {
    work();
  } catch (error) {
    assert.ok(isValidationError(error));
    return (error as ValidationError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected a ValidationError');
};

describe('checkOptions', () => {
  it('passes known options of the right kinds and undefined values, and returns the options', () => {
    const options = { name: 'a', concurrency: 2, busyTimeoutMs: 0, mode: 'wait', handler: () => 1, even: 4 };
    assert.equal(checkOptions(options, spec, 'f'), options);
    assert.deepEqual(checkOptions({ name: undefined }, spec, 'f'), { name: undefined });
    assert.equal(checkOptions(undefined, spec, 'f'), undefined);
  });

  it('names an unknown option and suggests the one meant', () => {
    assert.deepEqual(
      issuesOf(() => checkOptions({ concurrancy: 2 }, spec, 'createConsumer')),
      [
        `createConsumer.concurrancy: is not an option (did you mean 'concurrency'?); known: ${Object.keys(spec).join(', ')}`,
      ],
    );
    const [far] = issuesOf(() => checkOptions({ zzzzzzzz: 1 }, spec, 'f'));
    assert.doesNotMatch(far as string, /did you mean/);
  });

  it('lists every wrong type at once, saying what it got', () => {
    assert.deepEqual(
      issuesOf(() =>
        checkOptions(
          { name: '', concurrency: 'eight', busyTimeoutMs: '5000', mode: 'x', handler: 3, even: 3 },
          spec,
          'f',
        ),
      ),
      [
        "f.name: must be a non-empty string, got ''",
        "f.concurrency: must be an integer >= 1, got 'eight'",
        "f.busyTimeoutMs: must be an integer >= 0, got '5000'",
        "f.mode: must be one of 'wait', 'dead-letter', got 'x'",
        'f.handler: must be a function, got number 3',
        'f.even: must be even',
      ],
    );
  });

  it('refuses null and non-objects as options, and missing required options', () => {
    assert.deepEqual(
      issuesOf(() => checkOptions(null, spec, 'append options')),
      ['append options: must be an options object, got null'],
    );
    assert.deepEqual(
      issuesOf(() => checkOptions([], spec, 'f')),
      ['f: must be an options object, got an array'],
    );
    assert.deepEqual(
      issuesOf(() => checkOptions({}, spec, 'f', { required: ['name'] })),
      ['f.name: is required'],
    );
    assert.deepEqual(
      issuesOf(() => checkOptions(undefined, spec, 'f', { required: ['name'] })),
      ['f: must be an options object, got undefined'],
    );
  });

  it('describes values the way the messages read', () => {
    assert.equal(describeValue(undefined), 'undefined');
    assert.equal(describeValue({}), 'an object');
    assert.equal(describeValue(new Map()), 'a Map');
    assert.equal(describeValue(Number.NaN), 'number NaN');
    assert.equal(describeValue(10n), 'bigint 10n');
    assert.ok(new ValidationError({ path: 'x', message: 'y' }) instanceof Error);
  });
});
