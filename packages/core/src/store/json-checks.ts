import type { ValidationIssue } from '../errors/index.ts';

// Well-formed text and JSON values: the checks every write of event data, metadata, snapshots and
// messages shares (store/validation.ts for events, messaging/message-validation.ts for messages).

const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * Whether `value` is well-formed UTF-16 (no lone surrogate). Databases store
 * text as UTF-8, which cannot hold a lone surrogate: PostgreSQL replaces or
 * refuses it and SQLite alters it, so two distinct ids would alias.
 */
export function isWellFormedText(value: string): boolean {
  // String.prototype.isWellFormed (Node 20) is not in the ES2023 lib this tree compiles against.
  return (value as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/**
 * Whether `value` is text every store keeps as JSON: well-formed (see
 * `isWellFormedText`) and without U+0000 (NUL). PostgreSQL's `json` keeps a
 * NUL as written, but any operator reading the value (an index on the
 * correlation id, a queue's lookups) refuses the whole document.
 */
export function isStorableText(value: string): boolean {
  return isWellFormedText(value) && !value.includes('\u0000');
}

const LONE_SURROGATES = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Failure text (an error's name, message and stack) as every store keeps it
 * in a record of the failure (a dead letter, a parked workflow instance or
 * projection): a NUL (U+0000) as U+2400 (␀) and a lone surrogate as U+FFFD,
 * which no store keeps (see `isStorableText`). An error's text comes from
 * anywhere (a message quoting binary input, a driver's error); it must never
 * stop its failure from being recorded.
 *
 * @example
 * storableFailureText('bad byte \u0000'); // 'bad byte ␀'
 */
export function storableFailureText(text: string): string {
  return text.replaceAll('\u0000', '\u2400').replace(LONE_SURROGATES, '\uFFFD');
}

function holdsNul(value: string): string {
  return `holds U+0000 (NUL) at index ${value.indexOf('\u0000')}: PostgreSQL cannot read JSON holding it, so no store keeps it`;
}

/** The issue for a string holding a lone surrogate, naming where. */
export function illFormed(value: string): string {
  const at = LONE_SURROGATE.exec(value)?.index ?? 0;
  return `holds a lone surrogate (U+${value.charCodeAt(at).toString(16).toUpperCase()} at index ${at}): it is not well-formed UTF-16 and cannot be stored as it is`;
}

// Objects JSON.stringify turns into `{}` or mangles without a word.
const LOSSY_TAGS = new Set([
  '[object Map]',
  '[object Set]',
  '[object WeakMap]',
  '[object WeakSet]',
  '[object RegExp]',
  '[object Promise]',
  '[object Error]',
  '[object ArrayBuffer]',
]);

/**
 * The most levels of arrays and objects JSON values nest (the value itself
 * the first): far past real data, and well within the stack that checking,
 * JSON.stringify and JSON.parse take.
 */
export const MAX_JSON_DEPTH = 256;

/** `root` followed by the keys walked so far: `events[0].data.lines[2].price`. */
function pathOf(root: string, trail: readonly (string | number)[]): string {
  let path = root;
  for (const key of trail) path += typeof key === 'number' ? `[${key}]` : `.${key}`;
  return path;
}

/**
 * An upper bound of the UTF-8 bytes of a value's JSON text, summed while it
 * is checked: a character takes at most 6 bytes (a `\\u` escape), a number
 * 25. `Infinity` when a `toJSON` leaves the size unknown.
 */
export interface JsonSizeBound {
  bytes: number;
}

export interface JsonCheckOptions {
  /** Summed while checking (see `JsonSizeBound`). */
  size?: JsonSizeBound;
  /**
   * Whether strings and keys may hold U+0000 (NUL): only where nothing reads
   * the JSON in the database (snapshot states). Default false.
   */
  allowNul?: boolean;
}

/** What one walk of `checkJson` carries: the keys walked from `root`, the objects above. */
interface Walk extends JsonCheckOptions {
  root: string;
  issues: ValidationIssue[];
  ancestors: Set<object>;
  trail: (string | number)[];
}

/**
 * Records every value under `value` that JSON cannot carry faithfully, or no
 * store keeps (a NUL, unless `allowNul`). The path of a value is only written
 * out when it has an issue.
 */
export function checkJson(
  value: unknown,
  root: string,
  issues: ValidationIssue[],
  options: JsonCheckOptions = {},
): void {
  walk(value, { ...options, root, issues, ancestors: new Set(), trail: [] });
}

function textProblem(value: string, at: Walk): string | undefined {
  if (!isWellFormedText(value)) return illFormed(value);
  if (!at.allowNul && value.includes('\u0000')) return holdsNul(value);
  return undefined;
}

/**
 * `returned`: `value` is what a `toJSON` returned, which JSON.stringify takes
 * as it is (it calls no `toJSON` of it, and leaves a function out).
 */
function walk(value: unknown, at: Walk, returned = false): void {
  const { size, issues, trail, ancestors } = at;
  switch (typeof value) {
    case 'string': {
      const problem = textProblem(value, at);
      if (problem !== undefined) issues.push({ path: pathOf(at.root, trail), message: problem });
      if (size) size.bytes += value.length * 6 + 3;
      return;
    }
    case 'boolean':
      if (size) size.bytes += 6;
      return;
    case 'number':
      if (size) size.bytes += 25;
      if (!Number.isFinite(value)) {
        issues.push({ path: pathOf(at.root, trail), message: `is ${value}, which JSON cannot represent` });
      }
      return;
    case 'bigint':
      issues.push({ path: pathOf(at.root, trail), message: 'is a BigInt, which JSON cannot represent (use a string)' });
      return;
    case 'undefined':
      issues.push({ path: pathOf(at.root, trail), message: 'is undefined, which JSON cannot represent (use null)' });
      return;
    case 'function':
    case 'symbol':
      issues.push({ path: pathOf(at.root, trail), message: `is a ${typeof value}, which JSON cannot represent` });
      return;
  }
  if (value === null) {
    if (size) size.bytes += 5;
    return;
  }
  const object = value as object;
  if (trail.length >= MAX_JSON_DEPTH) {
    issues.push({
      path: pathOf(at.root, trail),
      message: `is an array or object nested past the limit of ${MAX_JSON_DEPTH} levels`,
    });
    return;
  }
  if (ancestors.has(object)) {
    issues.push({ path: pathOf(at.root, trail), message: 'refers back to one of its parents (a cycle)' });
    return;
  }
  const toJSON = (object as { toJSON?: unknown }).toJSON;
  if (!returned && typeof toJSON === 'function') {
    checkToJson(object, toJSON as (this: object, key: string) => unknown, at);
    return;
  }
  const isArray = Array.isArray(object);
  const proto = isArray ? Array.prototype : Object.getPrototypeOf(object);
  // Plain objects and arrays are what JSON carries; anything else is checked for a lossy kind.
  if (!isArray && proto !== Object.prototype && proto !== null) {
    const tag = Object.prototype.toString.call(object);
    if (LOSSY_TAGS.has(tag) || ArrayBuffer.isView(object)) {
      issues.push({
        path: pathOf(at.root, trail),
        message: `is a ${tag.slice(8, -1)}, which JSON would store as {} (convert it first)`,
      });
      return;
    }
  }
  ancestors.add(object);
  if (size) size.bytes += 2;
  if (isArray) {
    const array = object as unknown[];
    for (let i = 0; i < array.length; i++) {
      trail.push(i);
      walk(array[i], at);
      trail.pop();
    }
  } else {
    for (const key of Object.keys(object)) {
      const problem = textProblem(key, at);
      if (problem !== undefined) {
        issues.push({ path: pathOf(at.root, trail), message: `has a key that ${problem}` });
        continue;
      }
      const child = (object as Record<string, unknown>)[key];
      // An optional property left undefined is simply absent in JSON: allowed.
      if (child === undefined) continue;
      if (returned && key === 'toJSON' && typeof child === 'function') continue;
      if (size) size.bytes += key.length * 6 + 4;
      trail.push(key);
      walk(child, at);
      trail.pop();
    }
  }
  ancestors.delete(object);
}

/**
 * A value with a `toJSON` (a `Date`, a `Buffer`, a class of the caller's) is
 * stored as what it returns, called as JSON.stringify calls it (with the
 * property's key): that is checked in its place, at its path. Of a size not
 * known here (it may return another the next time).
 */
function checkToJson(object: object, toJSON: (this: object, key: string) => unknown, at: Walk): void {
  const { size, issues, trail } = at;
  if (size) size.bytes = Number.POSITIVE_INFINITY;
  const last = trail.at(-1);
  let value: unknown;
  try {
    value = toJSON.call(object, last === undefined ? '' : String(last));
  } catch (error) {
    issues.push({
      path: pathOf(at.root, trail),
      message: `cannot be serialized as JSON: its toJSON threw: ${error instanceof Error ? error.message : String(error)}`,
    });
    return;
  }
  if (value === undefined) {
    // A property whose toJSON gives nothing is absent, as one left undefined; elsewhere JSON has no place for it.
    if (typeof last !== 'string') {
      issues.push({
        path: pathOf(at.root, trail),
        message: 'has a toJSON that returns undefined, which JSON cannot represent',
      });
    }
    return;
  }
  walk(value, at, true);
}

/** Deeper than this, `plainJsonBound` leaves the value to `checkJson` (which finds cycles). */
const PLAIN_DEPTH = 64;

/**
 * The size bound `checkJson` would sum for `value` (the same per-value
 * figures), when `value` is plain JSON it finds no problem with: strings
 * well-formed and without NUL, finite numbers, booleans, null, arrays without undefined and
 * plain objects, no deeper than 64 levels. -1 for anything else (a `toJSON`,
 * a class instance, a problem): then `checkJson` walks it, reporting where.
 */
export function plainJsonBound(value: unknown, depth = 0): number {
  switch (typeof value) {
    case 'string':
      return isStorableText(value) ? value.length * 6 + 3 : -1;
    case 'boolean':
      return 6;
    case 'number':
      return Number.isFinite(value) ? 25 : -1;
    case 'object':
      break;
    default:
      return -1;
  }
  if (value === null) return 5;
  if (depth >= PLAIN_DEPTH || typeof (value as { toJSON?: unknown }).toJSON === 'function') return -1;
  let bytes = 2;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const child = plainJsonBound(value[i], depth + 1);
      if (child < 0) return -1;
      bytes += child;
    }
    return bytes;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return -1;
  for (const key of Object.keys(value)) {
    if (!isStorableText(key)) return -1;
    const child = (value as Record<string, unknown>)[key];
    // An optional property left undefined is simply absent in JSON, as `checkJson` allows.
    if (child === undefined) continue;
    const size = plainJsonBound(child, depth + 1);
    if (size < 0) return -1;
    bytes += key.length * 6 + 4 + size;
  }
  return bytes;
}

/** Whether `value` is an object literal (or made with a null prototype). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
