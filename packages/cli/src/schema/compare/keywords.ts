/**
 * The checks inside one branch, by JSON type: bounds on numbers, strings and
 * arrays, an object's fields and extra properties. Each returns the breaking
 * changes from `before` to `after`; nested schemas go back to `compare`.
 */
import type { SchemaChange } from '../report.ts';
import { type Branch, canonical, dereference, isObject } from './branches.ts';
import {
  bound,
  type CompareNested,
  change,
  dependentNames,
  describeBound,
  distinct,
  extraProperties,
  fieldPath,
  isMultiple,
  patternOf,
  patternPath,
  patternsOf,
  stringList,
  tupleOf,
} from './keyword-parts.ts';
import { listedChanges, valueChanges } from './listed-values.ts';

export { type CompareNested, distinct };

function numberChanges(before: Branch, after: Branch, path: string): SchemaChange[] {
  const changes: SchemaChange[] = [];
  for (const side of ['lower', 'upper'] as const) {
    const was = bound(before.schema, side, before.type);
    const now = bound(after.schema, side, after.type);
    if (now === undefined) continue;
    const tighter =
      was === undefined ||
      (side === 'lower' ? now.value > was.value : now.value < was.value) ||
      (now.value === was.value && now.exclusive && !was.exclusive);
    if (!tighter) continue;
    const message = was
      ? `must now be ${describeBound(now, side)} (was ${describeBound(was, side)})`
      : `must now be ${describeBound(now, side)} (was unbounded)`;
    changes.push(change('bounds-tightened', path, message, was?.value, now.value));
  }
  const step = after.schema.multipleOf;
  const oldStep = before.schema.multipleOf;
  if (typeof step === 'number' && !(typeof oldStep === 'number' && isMultiple(oldStep, step))) {
    changes.push(change('bounds-tightened', path, `must now be a multiple of ${step}`, oldStep, step));
  }
  return changes;
}

/** A `min*` raised, a `max*` lowered, or either added. */
function sizeChanges(before: Branch, after: Branch, path: string, min: string, max: string, unit: string) {
  const changes: SchemaChange[] = [];
  const wasMin = before.schema[min];
  const nowMin = after.schema[min];
  if (typeof nowMin === 'number' && nowMin > 0 && !(typeof wasMin === 'number' && wasMin >= nowMin)) {
    changes.push(
      change('bounds-tightened', path, `${min} raised to ${nowMin} ${unit} (was ${wasMin ?? 0})`, wasMin, nowMin),
    );
  }
  const wasMax = before.schema[max];
  const nowMax = after.schema[max];
  if (typeof nowMax === 'number' && !(typeof wasMax === 'number' && wasMax <= nowMax)) {
    const was = typeof wasMax === 'number' ? wasMax : 'unbounded';
    changes.push(change('bounds-tightened', path, `${max} lowered to ${nowMax} ${unit} (was ${was})`, wasMax, nowMax));
  }
  return changes;
}

function stringChanges(before: Branch, after: Branch, path: string): SchemaChange[] {
  const changes = sizeChanges(before, after, path, 'minLength', 'maxLength', 'characters');
  const { pattern, format } = after.schema;
  if (typeof pattern === 'string' && pattern !== before.schema.pattern) {
    changes.push(change('type-narrowed', path, `must now match /${pattern}/`, before.schema.pattern ?? null, pattern));
  }
  if (typeof format === 'string' && format !== before.schema.format) {
    changes.push(change('type-narrowed', path, `must now be of format '${format}'`, before.schema.format, format));
  }
  return changes;
}

function arrayChanges(before: Branch, after: Branch, path: string, compare: CompareNested): SchemaChange[] {
  const changes = sizeChanges(before, after, path, 'minItems', 'maxItems', 'items');
  if (after.schema.uniqueItems === true && before.schema.uniqueItems !== true) {
    changes.push(change('bounds-tightened', path, 'items must now be unique', false, true));
  }
  const was = tupleOf(before.schema);
  const now = tupleOf(after.schema);
  const positions = Math.max(was.prefix.length, now.prefix.length);
  for (let i = 0; i < positions; i++) {
    changes.push(...compare(was.prefix[i] ?? was.rest, now.prefix[i] ?? now.rest, `${path}[${i}]`));
  }
  if (now.rest === false && was.rest !== false) {
    const message = `no longer accepts items past position ${now.prefix.length}`;
    changes.push(change('bounds-tightened', `${path}[]`, message, was.rest, false));
  } else if (was.rest !== false) {
    changes.push(...compare(was.rest, now.rest, `${path}[]`));
  }
  return changes;
}

/** A name a present field now requires that stored events with that field may lack. */
function dependentChanges(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
  path: string,
  wasRequired: Set<string>,
): SchemaChange[] {
  const was = dependentNames(before);
  const changes: SchemaChange[] = [];
  for (const [key, names] of dependentNames(after)) {
    const wasNames = was.get(key);
    for (const name of names) {
      if (wasRequired.has(name) || wasNames?.has(name)) continue;
      const message = `field '${name}' became required when '${key}' is present`;
      changes.push(change('required-added', fieldPath(path, name), message, wasNames && [...wasNames], [...names]));
    }
  }
  return changes;
}

/** The text every key a pattern matches starts with (`^tag_` → `tag_`, `^x` → `x`), `undefined` when there is none. */
function literalStart(source: string): string | undefined {
  if (!source.startsWith('^') || source.includes('|')) return undefined;
  const run = /^[^\\^$.|?*+()[\]{}]*/.exec(source.slice(1))?.[0] ?? '';
  // A quantifier after the run applies to its last character only.
  const next = source[1 + run.length];
  return next !== undefined && '?*{'.includes(next) ? run.slice(0, -1) : run;
}

/** Two patterns may match one key, unless they start with different texts. */
function mayOverlap(a: string, b: string): boolean {
  const x = literalStart(a);
  const y = literalStart(b);
  return x === undefined || y === undefined || x.startsWith(y) || y.startsWith(x);
}

/** `wide` matches every key `narrow` does: it is only a start (`^tag`) that `narrow`'s start begins with. */
function covers(wide: string, narrow: string): boolean {
  const w = literalStart(wide);
  const n = literalStart(narrow);
  return w !== undefined && wide === `^${w}` && n?.startsWith(w) === true;
}

/**
 * Fields a key pattern takes (`patternProperties`). A key matching a pattern
 * is held to it (a declared field too), any other undeclared key to the
 * extra-field schema: a pattern added takes keys the extra-field schema (or
 * an old pattern that may match them) took, a pattern removed hands its keys
 * to it. Which keys two patterns share is read from their literal starts only.
 */
function patternChanges(
  before: Branch,
  after: Branch,
  path: string,
  compare: CompareNested,
  wasFields: Record<string, unknown>,
  nowFields: Record<string, unknown>,
): SchemaChange[] {
  const changes: SchemaChange[] = [];
  const wasPatterns = patternsOf(before.schema);
  const nowPatterns = patternsOf(after.schema);
  const wasExtra = extraProperties(before.schema);
  const nowExtra = extraProperties(after.schema);
  for (const [source, now] of nowPatterns) {
    const at = patternPath(path, source);
    if (wasPatterns.has(source)) {
      changes.push(...compare(wasPatterns.get(source), now, at));
      continue;
    }
    if (wasExtra === true && compare(true, now, at).length > 0) {
      const message = `fields matching /${source}/ must now match a schema`;
      changes.push(change('additional-properties-tightened', path, message, true, now));
      continue;
    }
    if (wasExtra !== true && wasExtra !== false) changes.push(...compare(wasExtra, now, at));
    for (const [old, was] of wasPatterns) if (mayOverlap(old, source)) changes.push(...compare(was, now, at));
    // A declared field it matches is held to it too (one it cannot compile is taken as matched).
    const matcher = patternOf(source);
    for (const key of Object.keys(nowFields)) {
      if (!Object.hasOwn(wasFields, key) || matcher?.test(key) === false) continue;
      changes.push(...compare(wasFields[key], now, fieldPath(path, key)));
    }
  }
  for (const [source, was] of wasPatterns) {
    if (nowPatterns.has(source) || [...nowPatterns.keys()].some((now) => covers(now, source))) continue;
    if (nowExtra === false) {
      const message = `no longer accepts fields matching /${source}/`;
      changes.push(change('additional-properties-tightened', path, message, was, false));
    } else if (nowExtra !== true) changes.push(...compare(was, nowExtra, patternPath(path, source)));
  }
  return distinct(changes);
}

function objectChanges(
  before: Branch,
  after: Branch,
  path: string,
  compare: CompareNested,
  afterRoot: unknown,
): SchemaChange[] {
  const changes = sizeChanges(before, after, path, 'minProperties', 'maxProperties', 'properties');
  const wasFields = isObject(before.schema.properties) ? before.schema.properties : {};
  const nowFields = isObject(after.schema.properties) ? after.schema.properties : {};
  for (const [key, was] of Object.entries(wasFields)) {
    const at = fieldPath(path, key);
    if (!(key in nowFields)) {
      changes.push(change('field-removed', at, `field '${key}' was removed or renamed`, was, null));
    } else changes.push(...compare(was, nowFields[key], at));
  }
  const wasRequired = new Set(stringList(before.schema.required));
  const nowRequired = new Set(stringList(after.schema.required));
  for (const [key, now] of Object.entries(nowFields)) {
    if (wasRequired.has(key)) continue;
    const field = dereference(now, afterRoot);
    const defaulted = isObject(field) && 'default' in field;
    if (!defaulted && !nowRequired.has(key)) continue;
    // A default is applied when an event is written, never when a stored one is read: events stored before
    // the field was there (or optional) read back without it, though the schema's output type says it is always set.
    let message = `field '${key}' became required`;
    if (defaulted) {
      message = `${key in wasFields ? `field '${key}' gained` : `new field '${key}' has`} a default, but events stored before it read back without it (reads apply no defaults): add it in a new version whose upcaster fills it, or leave it optional without a default`;
    } else if (!(key in wasFields)) message = `new field '${key}' is required and has no default`;
    changes.push(change('required-added', fieldPath(path, key), message, wasFields[key], now));
  }
  changes.push(...dependentChanges(before.schema, after.schema, path, wasRequired));
  // A name required without a properties entry (a hand-written schema): stored events may lack it all the same.
  for (const key of nowRequired) {
    if (Object.hasOwn(nowFields, key) || wasRequired.has(key)) continue;
    const message = `field '${key}' became required (no properties entry declares it)`;
    changes.push(change('required-added', fieldPath(path, key), message, null, null));
  }
  // The keys a record accepts (`z.record(z.enum([...]), …)`, a key pattern): fewer keys break stored events.
  const wasKeys = before.schema.propertyNames ?? true;
  const nowKeys = after.schema.propertyNames ?? true;
  if (nowKeys !== true) changes.push(...compare(wasKeys, nowKeys, `${path}{key}`));
  changes.push(...patternChanges(before, after, path, compare, wasFields, nowFields));
  const wasExtra = extraProperties(before.schema);
  const nowExtra = extraProperties(after.schema);
  if (nowExtra === true || wasExtra === false) return changes;
  if (nowExtra === false || wasExtra === true) {
    const message =
      nowExtra === false
        ? 'no longer accepts fields it does not list'
        : 'fields it does not list must now match a schema';
    changes.push(change('additional-properties-tightened', path, message, wasExtra, nowExtra));
  } else changes.push(...compare(wasExtra, nowExtra, `${path}.*`));
  return changes;
}

/** Keywords the check does not take apart beside a type (or values): one added, removed or changed is reported. */
const opaqueKeywords = ['not', 'if', 'then', 'else', 'contains', 'minContains', 'maxContains', 'dependentSchemas'];

/** The keywords the check does not take apart, the schema entries of draft-07 `dependencies` as `dependentSchemas`. */
function opaqueParts(schema: Record<string, unknown>): Record<string, unknown> {
  const parts: Record<string, unknown> = {};
  for (const key of opaqueKeywords) if (schema[key] !== undefined) parts[key] = schema[key];
  const draft07 = Object.entries(isObject(schema.dependencies) ? schema.dependencies : {});
  const schemas = draft07.filter(([, value]) => !Array.isArray(value));
  if (schemas.length > 0) {
    parts.dependentSchemas = {
      ...Object.fromEntries(schemas),
      ...(isObject(parts.dependentSchemas) ? parts.dependentSchemas : {}),
    };
  }
  return parts;
}

function opaqueChanges(before: Branch, after: Branch, path: string): SchemaChange[] {
  const was = opaqueParts(before.schema);
  const now = opaqueParts(after.schema);
  const changed = opaqueKeywords.filter((key) => canonical(was[key]) !== canonical(now[key]));
  if (changed.length === 0) return [];
  const pick = (parts: Record<string, unknown>) =>
    Object.fromEntries(changed.filter((key) => key in parts).map((key) => [key, parts[key]]));
  const message = `${changed.join(', ')} changed, which the check compares by ${changed.length > 1 ? 'their' : 'its'} text only`;
  return [change('type-narrowed', path, message, pick(was), pick(now))];
}

/**
 * The breaking changes between two branches of types that can match (the
 * same, or integer for number). Values (`enum`, `const`) are checked first:
 * listed values before are checked one by one against `after`'s keywords.
 */
export function branchChanges(
  before: Branch,
  after: Branch,
  path: string,
  compare: CompareNested,
  afterRoot: unknown,
): SchemaChange[] {
  const changes = opaqueChanges(before, after, path);
  if (after.values) return [...changes, ...listedChanges(before, after, after.values, path)];
  if (before.values) return [...changes, ...valueChanges(before, after, path, compare)];
  if (before.type === 'number' && after.type === 'integer') {
    changes.push(change('type-narrowed', path, 'now accepts integers only (was any number)', 'number', 'integer'));
  }
  switch (after.type) {
    case 'number':
    case 'integer':
      return [...changes, ...numberChanges(before, after, path)];
    case 'string':
      return [...changes, ...stringChanges(before, after, path)];
    case 'array':
      return [...changes, ...arrayChanges(before, after, path, compare)];
    case 'object':
      return [...changes, ...objectChanges(before, after, path, compare, afterRoot)];
    default:
      return changes;
  }
}
