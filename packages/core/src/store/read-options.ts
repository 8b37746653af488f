import { ValidationError } from '../errors/index.ts';
import { checkReadAllOptions, checkReadStreamOptions } from './store-options.ts';
import type { ReadAllOptions, ReadDirection, ReadStreamOptions } from './types.ts';
import { assertIntegerOption, assertNameList } from './validation.ts';

export interface NormalizedReadStream {
  from: number;
  to: number;
  direction: ReadDirection;
  limit: number;
}

/** Checks and fills in `readStream` options; every adapter reads with the same rules. */
export function normalizeReadStream(given?: ReadStreamOptions): NormalizedReadStream {
  const options = checkReadStreamOptions(given) ?? {};
  const from = assertIntegerOption(options.from, 'from') ?? 1;
  const to = assertIntegerOption(options.to, 'to') ?? Number.MAX_SAFE_INTEGER;
  const limit = assertIntegerOption(options.limit, 'limit') ?? Number.MAX_SAFE_INTEGER;
  const direction = options.direction ?? 'forwards';
  if (direction !== 'forwards' && direction !== 'backwards') {
    throw new ValidationError({ path: 'direction', message: `must be 'forwards' or 'backwards'` });
  }
  return { from: Math.max(from, 1), to, direction, limit };
}

export interface NormalizedReadAll {
  /** Exclusive lower bound. */
  after: number;
  limit: number;
  types: readonly string[] | undefined;
  categories: readonly string[] | undefined;
  batchSize: number;
}

/** Checks and fills in `readAll` options. */
export function normalizeReadAll(given?: ReadAllOptions): NormalizedReadAll {
  const options = checkReadAllOptions(given) ?? {};
  const from = assertIntegerOption(options.from, 'from');
  const after = assertIntegerOption(options.after, 'after');
  if (from !== undefined && after !== undefined) {
    throw new ValidationError({ path: 'from', message: `give either 'from' or 'after', not both` });
  }
  const types = assertNameList(options.types, 'types');
  const categories = assertNameList(options.categories, 'categories');
  return {
    after: after ?? Math.max((from ?? 1) - 1, 0),
    limit: assertIntegerOption(options.limit, 'limit') ?? Number.MAX_SAFE_INTEGER,
    types: types && types.length > 0 ? types : undefined,
    categories: categories && categories.length > 0 ? categories : undefined,
    batchSize: assertIntegerOption(options.batchSize, 'batchSize', 1) ?? 1000,
  };
}
