import { ValidationError, type ValidationIssue } from '../errors/index.ts';
import { checkOptions, describeValue, type OptionSpecOf } from '../options/check-options.ts';
import type {
  AppendOptions,
  DeleteMode,
  DeleteStreamOptions,
  ExpectedVersion,
  ReadAllOptions,
  ReadStreamOptions,
} from './types.ts';
import { assertDeleteMode, assertExpectedVersion, MAX_STREAM_ID_LENGTH, type StoreLimits } from './validation.ts';

// Kinds are checked by the normalizers with their own messages: the specs only refuse unknown names.
const appendSpec: OptionSpecOf<AppendOptions> = { expectedVersion: 'any' };
const readStreamSpec: OptionSpecOf<ReadStreamOptions> = { from: 'any', to: 'any', direction: 'any', limit: 'any' };
const readAllSpec: OptionSpecOf<ReadAllOptions> = {
  from: 'any',
  after: 'any',
  limit: 'any',
  types: 'any',
  categories: 'any',
  batchSize: 'any',
};
const deleteSpec: OptionSpecOf<DeleteStreamOptions> = { mode: 'any', expectedVersion: 'any' };
const limitsSpec: OptionSpecOf<StoreLimits> = {
  maxEventBytes: 'positive-integer',
  maxStreamIdLength: (value) =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_STREAM_ID_LENGTH
      ? undefined
      : `must be an integer from 1 to ${MAX_STREAM_ID_LENGTH} (PostgreSQL's indexes hold no longer id of every text), got ${describeValue(value)}`,
};

/**
 * Checks `append`'s options (unknown names, `null`) into `issues`, so they are
 * reported with the events' problems; returns the expected version.
 */
export function checkAppendOptions(options: unknown, issues: ValidationIssue[]): ExpectedVersion {
  // The common case, no options or only `expectedVersion`, costs one key lookup.
  try {
    checkOptions(options, appendSpec, 'append options');
    return assertExpectedVersion((options as AppendOptions | undefined)?.expectedVersion);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    issues.push(...error.issues);
    return 'any';
  }
}

/** Refuses unknown or ill-typed `readStream` options. */
export function checkReadStreamOptions(options: unknown): ReadStreamOptions | undefined {
  return checkOptions(options as ReadStreamOptions | undefined, readStreamSpec, 'readStream options');
}

/** Refuses unknown or ill-typed `readAll` options. */
export function checkReadAllOptions(options: unknown): ReadAllOptions | undefined {
  return checkOptions(options as ReadAllOptions | undefined, readAllSpec, 'readAll options');
}

/** Checks and fills in `deleteStream` options; every adapter deletes with the same rules. */
export function normalizeDeleteStream(options: unknown): { expected: ExpectedVersion; mode: DeleteMode } {
  const checked = checkOptions(options as DeleteStreamOptions | undefined, deleteSpec, 'deleteStream options');
  return { expected: assertExpectedVersion(checked?.expectedVersion), mode: assertDeleteMode(checked?.mode) };
}

/** Checks a store's `limits` option: known names, whole numbers >= 1. */
export function checkStoreLimits(limits: unknown, where: string): Partial<StoreLimits> | undefined {
  return checkOptions(limits as Partial<StoreLimits> | undefined, limitsSpec, where);
}
