import { ValidationError, type ValidationIssue } from '../errors/index.ts';

/**
 * What one option may hold. `undefined` always passes (the default applies);
 * a custom check returns the problem, or `undefined` when the value is fine.
 */
export type OptionKind =
  | 'string'
  | 'non-empty-string'
  | 'boolean'
  | 'function'
  | 'object'
  | 'array'
  | 'date'
  /** A whole number >= 1. */
  | 'positive-integer'
  /** A whole number >= 0. */
  | 'non-negative-integer'
  /** A finite number >= 0. */
  | 'non-negative-number'
  /** A whole number of ms from 1 to `MAX_TIMER_MS`: a timer's or an interval's delay. */
  | 'timer-ms'
  /** A finite number of ms from 0 to `MAX_TIMER_MS`: a backoff's bound. */
  | 'delay-ms'
  /** Anything: checked by the factory itself. */
  | 'any'
  | { readonly oneOf: readonly (string | number | boolean)[] }
  | ((value: unknown) => string | undefined);

/**
 * The longest delay of a timer, in ms (2^31 - 1, about 24.8 days): Node fires a
 * longer `setTimeout` or `setInterval` after 1 ms.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/** The options a factory or method takes, by name. */
export type OptionSpec = Readonly<Record<string, OptionKind>>;

/**
 * A spec that names every option of `T`, no more, no less: a new option added
 * to the interface but not to its spec fails to compile instead of being refused.
 */
export type OptionSpecOf<T> = { readonly [K in keyof T]-?: OptionKind };

/** How a value reads in an error message: `'eight'`, `a Map`, `number NaN`, `null`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.length > 40 ? `'${value.slice(0, 40)}…'` : `'${value}'`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') {
    const tag = Object.prototype.toString.call(value).slice(8, -1);
    return tag === 'Object' ? 'an object' : `a ${tag}`;
  }
  if (typeof value === 'bigint') return `bigint ${value}n`;
  if (typeof value === 'symbol') return 'a symbol';
  return `${typeof value} ${String(value)}`;
}

const integer = (value: unknown, min: number) =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= min;

function problem(kind: OptionKind, value: unknown): string | undefined {
  if (typeof kind === 'function') return kind(value);
  if (typeof kind === 'object') {
    if (kind.oneOf.includes(value as string)) return undefined;
    return `must be one of ${kind.oneOf.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')}, got ${describeValue(value)}`;
  }
  switch (kind) {
    case 'any':
      return undefined;
    case 'string':
      return typeof value === 'string' ? undefined : `must be a string, got ${describeValue(value)}`;
    case 'non-empty-string':
      return typeof value === 'string' && value.length > 0
        ? undefined
        : `must be a non-empty string, got ${describeValue(value)}`;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `must be true or false, got ${describeValue(value)}`;
    case 'function':
      return typeof value === 'function' ? undefined : `must be a function, got ${describeValue(value)}`;
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value)
        ? undefined
        : `must be an object, got ${describeValue(value)}`;
    case 'array':
      return Array.isArray(value) ? undefined : `must be an array, got ${describeValue(value)}`;
    case 'date':
      return value instanceof Date && !Number.isNaN(value.getTime())
        ? undefined
        : `must be a valid Date, got ${describeValue(value)}`;
    case 'positive-integer':
      return integer(value, 1) ? undefined : `must be an integer >= 1, got ${describeValue(value)}`;
    case 'non-negative-integer':
      return integer(value, 0) ? undefined : `must be an integer >= 0, got ${describeValue(value)}`;
    case 'timer-ms':
      return integer(value, 1) && (value as number) <= MAX_TIMER_MS
        ? undefined
        : `must be an integer from 1 to ${MAX_TIMER_MS} (a timer's limit, about 24.8 days), got ${describeValue(value)}`;
    case 'non-negative-number':
      return typeof value === 'number' && Number.isFinite(value) && value >= 0
        ? undefined
        : `must be a finite number >= 0, got ${describeValue(value)}`;
    case 'delay-ms':
      return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= MAX_TIMER_MS
        ? undefined
        : `must be a number from 0 to ${MAX_TIMER_MS} (ms, about 24.8 days), got ${describeValue(value)}`;
  }
}

/** Edit distance, for "did you mean" on a misspelt option. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

function unknownOption(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const name of known) {
    const d = distance(key.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  const hint =
    best !== undefined && bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean '${best}'?)` : '';
  return `is not an option${hint}; known: ${known.join(', ')}`;
}

export interface CheckOptionsSettings {
  /** Names that must be present (not `undefined`). */
  required?: readonly string[];
  /** `undefined` for the whole options object is fine (default true). */
  optional?: boolean;
}

/**
 * Checks an options object against `spec`: every key must be known, every
 * value of the kind declared (`undefined` passes, for the default). Throws one
 * `ValidationError` listing every problem, each at `<where>.<key>`; returns
 * the options, typed, so a factory can write `const o = checkOptions(...)`.
 *
 * @example
 * checkOptions(options, { name: 'non-empty-string', concurrency: 'positive-integer' }, 'createConsumer', {
 *   required: ['name'],
 * });
 */
export function checkOptions<T>(options: T, spec: OptionSpec, where: string, settings: CheckOptionsSettings = {}): T {
  if (options === undefined && (settings.optional ?? true) && !settings.required?.length) return options;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ValidationError({ path: where, message: `must be an options object, got ${describeValue(options)}` });
  }
  const issues: ValidationIssue[] = [];
  const record = options as Record<string, unknown>;
  const known = Object.keys(spec);
  for (const key of Object.keys(record)) {
    const kind = spec[key];
    if (kind === undefined) {
      issues.push({ path: `${where}.${key}`, message: unknownOption(key, known) });
      continue;
    }
    const value = record[key];
    if (value === undefined) continue;
    const found = problem(kind, value);
    if (found !== undefined) issues.push({ path: `${where}.${key}`, message: found });
  }
  for (const key of settings.required ?? []) {
    if (record[key] === undefined) issues.push({ path: `${where}.${key}`, message: 'is required' });
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return options;
}
