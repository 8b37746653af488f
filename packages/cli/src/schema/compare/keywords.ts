/**
 * The checks inside one branch, by JSON type: bounds on numbers, strings and
 * arrays, an object's fields and extra properties. Each returns the breaking
 * changes from `before` to `after`; nested schemas go back to `compare`.
 */
import type { SchemaChange } from '../report.ts';
import { type Branch, canonical, dereference, isObject } from './branches.ts';

/** Compares two nested schemas (followed through their own documents' `$ref`s). */
export type CompareNested = (before: unknown, after: unknown, path: string) => SchemaChange[];

const change = (
  rule: SchemaChange['rule'],
  path: string,
  message: string,
  before: unknown,
  after: unknown,
): SchemaChange => ({ rule, path, message, before: before ?? null, after: after ?? null });

// zod writes the safe-integer range on every integer: no bound a stored value could meet.
const unbounded = (value: unknown, type: Branch['type']) =>
  type === 'integer' && (value === Number.MAX_SAFE_INTEGER || value === Number.MIN_SAFE_INTEGER);

interface Bound {
  value: number;
  exclusive: boolean;
  keyword: string;
}

function bound(schema: Record<string, unknown>, side: 'lower' | 'upper', type: Branch['type']): Bound | undefined {
  const [inclusive, exclusive] = side === 'lower' ? ['minimum', 'exclusiveMinimum'] : ['maximum', 'exclusiveMaximum'];
  const candidates: Bound[] = [];
  const plain = schema[inclusive];
  const strict = schema[exclusive];
  if (typeof plain === 'number' && !unbounded(plain, type))
    candidates.push({ value: plain, exclusive: false, keyword: inclusive });
  if (typeof strict === 'number') candidates.push({ value: strict, exclusive: true, keyword: exclusive });
  // The tighter of the two is the bound in force.
  return candidates.sort((a, b) =>
    a.value === b.value
      ? Number(b.exclusive) - Number(a.exclusive)
      : side === 'lower'
        ? b.value - a.value
        : a.value - b.value,
  )[0];
}

const describeBound = (b: Bound, side: 'lower' | 'upper') =>
  `${side === 'lower' ? (b.exclusive ? '>' : '>=') : b.exclusive ? '<' : '<='} ${b.value}`;

// multipleOf on decimals: 0.3 / 0.1 is 2.9999999999999996 in floating point (and 0.3 % 0.1 is 0.09999999999999998).
const isMultiple = (value: number, step: number) => Math.abs(value / step - Math.round(value / step)) < 1e-9;

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

/** Draft-07 tuples (`items: [...]`, `additionalItems`) read as 2020-12 (`prefixItems`, `items`). */
function tupleOf(schema: Record<string, unknown>): { prefix: unknown[]; rest: unknown } {
  if (Array.isArray(schema.items)) return { prefix: schema.items, rest: schema.additionalItems ?? true };
  return { prefix: Array.isArray(schema.prefixItems) ? schema.prefixItems : [], rest: schema.items ?? true };
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

const fieldPath = (path: string, key: string) =>
  /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;

const stringList = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];

/** Extra properties: `false` refuses them, a schema constrains them, absent or `true` allows any. */
function extraProperties(schema: Record<string, unknown>): unknown {
  const extra = schema.additionalProperties ?? schema.unevaluatedProperties ?? true;
  return isObject(extra) && Object.keys(extra).length === 0 ? true : extra;
}

/** The names each field requires when present: `dependentRequired`, and the list entries of draft-07 `dependencies`. */
function dependentNames(schema: Record<string, unknown>): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  for (const source of [schema.dependencies, schema.dependentRequired]) {
    for (const [key, names] of Object.entries(isObject(source) ? source : {})) {
      if (Array.isArray(names)) found.set(key, new Set([...(found.get(key) ?? []), ...stringList(names)]));
    }
  }
  return found;
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

/** The key patterns of an object (`patternProperties`, an arktype index signature), each with its fields' schema. */
const patternsOf = (schema: Record<string, unknown>): Map<string, unknown> =>
  new Map(isObject(schema.patternProperties) ? Object.entries(schema.patternProperties) : []);

const patternPath = (path: string, source: string) => `${path}[/${source}/]`;

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

/** One change per rule, path and message: a field compared through several patterns is told once. */
export function distinct(changes: SchemaChange[]): SchemaChange[] {
  const seen = new Set<string>();
  return changes.filter((c) => {
    const key = `${c.rule}\u0000${c.path}\u0000${c.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
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

/** Why a value listed before fails a keyword of `after`: the rule it breaks and the keyword's value. */
interface Refusal {
  rule: SchemaChange['rule'];
  reason: string;
  after: unknown;
}

/** `pattern` as JSON Schema reads it (ECMA-262, unicode); `undefined` when JavaScript cannot compile it. */
function patternOf(source: string): RegExp | undefined {
  for (const flags of ['u', '']) {
    try {
      return new RegExp(source, flags);
    } catch {}
  }
  return undefined;
}

/** The keywords of `after` a number or string value fails (objects and arrays: `objectValueChanges`, `arrayValueChanges`). */
function refusals(value: unknown, after: Branch, was: Record<string, unknown>): Refusal[] {
  const found: Refusal[] = [];
  const refuse = (rule: Refusal['rule'], reason: string, keyword: unknown) =>
    found.push({ rule, reason, after: keyword });
  const { minLength, maxLength, pattern, format, multipleOf } = after.schema;
  if (typeof value === 'number') {
    if (after.type === 'integer' && !Number.isInteger(value)) {
      refuse('type-narrowed', 'now accepts integers only', 'integer');
    }
    for (const side of ['lower', 'upper'] as const) {
      const now = bound(after.schema, side, after.type);
      if (now === undefined) continue;
      const outside = side === 'lower' ? value < now.value : value > now.value;
      if (outside || (now.exclusive && value === now.value)) {
        refuse('bounds-tightened', `must now be ${describeBound(now, side)}`, now.value);
      }
    }
    if (typeof multipleOf === 'number' && multipleOf > 0 && !isMultiple(value, multipleOf)) {
      refuse('bounds-tightened', `must now be a multiple of ${multipleOf}`, multipleOf);
    }
  }
  if (typeof value === 'string') {
    // JSON Schema counts code points, JavaScript validators UTF-16 units: each bound is held to the stricter count.
    if (typeof minLength === 'number' && [...value].length < minLength) {
      refuse('bounds-tightened', `minLength raised to ${minLength} characters`, minLength);
    }
    if (typeof maxLength === 'number' && value.length > maxLength) {
      refuse('bounds-tightened', `maxLength lowered to ${maxLength} characters`, maxLength);
    }
    if (typeof pattern === 'string' && !patternOf(pattern)?.test(value)) {
      refuse('type-narrowed', `must now match /${pattern}/`, pattern);
    }
    // The check knows no formats: a new one is taken as failed (the old one let the value pass already).
    if (typeof format === 'string' && format !== was.format) {
      refuse('type-narrowed', `must now be of format '${format}'`, format);
    }
  }
  return found;
}

/** An object listed before against an object branch: its fields against the fields, key patterns and extra-field schema. */
function objectValueChanges(
  value: Record<string, unknown>,
  after: Branch,
  path: string,
  compare: CompareNested,
): SchemaChange[] {
  const changes: SchemaChange[] = [];
  const listed = JSON.stringify(value);
  const { schema } = after;
  const lacks = (name: string, why: string) => {
    if (Object.hasOwn(value, name)) return;
    const message = `field '${name}' is required ${why}, and the listed value ${listed} lacks it`;
    changes.push(change('required-added', fieldPath(path, name), message, value, null));
  };
  for (const name of stringList(schema.required)) lacks(name, 'now');
  for (const [key, names] of dependentNames(schema)) {
    if (Object.hasOwn(value, key)) for (const name of names) lacks(name, `when '${key}' is present`);
  }
  const keys = Object.keys(value);
  const { minProperties: min, maxProperties: max } = schema;
  if (typeof min === 'number' && keys.length < min) {
    changes.push(change('bounds-tightened', path, `no longer accepts ${listed} (minProperties ${min})`, value, min));
  }
  if (typeof max === 'number' && keys.length > max) {
    changes.push(change('bounds-tightened', path, `no longer accepts ${listed} (maxProperties ${max})`, value, max));
  }
  const fields = isObject(schema.properties) ? schema.properties : {};
  const extra = extraProperties(schema);
  for (const key of keys) {
    const field = { const: value[key] };
    if (schema.propertyNames !== undefined)
      changes.push(...compare({ const: key }, schema.propertyNames, `${path}{key}`));
    // A pattern JavaScript cannot compile is taken as matching.
    const matching = [...patternsOf(schema)].filter(([source]) => patternOf(source)?.test(key) !== false);
    for (const [source, pattern] of matching) changes.push(...compare(field, pattern, patternPath(path, source)));
    if (Object.hasOwn(fields, key)) changes.push(...compare(field, fields[key], fieldPath(path, key)));
    else if (matching.length > 0 || extra === true) continue;
    else if (extra === false) {
      const message = `no longer accepts ${listed} (field '${key}' is not declared, and extra fields are refused)`;
      changes.push(change('additional-properties-tightened', path, message, value, false));
    } else changes.push(...compare(field, extra, `${path}.*`));
  }
  return changes;
}

/** An array listed before against an array branch: its size, and each item against the schema of its position. */
function arrayValueChanges(value: unknown[], after: Branch, path: string, compare: CompareNested): SchemaChange[] {
  const changes: SchemaChange[] = [];
  const listed = JSON.stringify(value);
  const { minItems: min, maxItems: max, uniqueItems } = after.schema;
  if (typeof min === 'number' && value.length < min) {
    changes.push(change('bounds-tightened', path, `no longer accepts ${listed} (minItems ${min})`, value, min));
  }
  if (typeof max === 'number' && value.length > max) {
    changes.push(change('bounds-tightened', path, `no longer accepts ${listed} (maxItems ${max})`, value, max));
  }
  if (uniqueItems === true && new Set(value.map(canonical)).size < value.length) {
    changes.push(
      change('bounds-tightened', path, `no longer accepts ${listed} (items must now be unique)`, value, true),
    );
  }
  const { prefix, rest } = tupleOf(after.schema);
  value.forEach((item, i) => {
    const at = i < prefix.length ? `${path}[${i}]` : `${path}[]`;
    const schema = i < prefix.length ? prefix[i] : rest;
    if (schema === false) {
      const message = `no longer accepts ${listed} (no items past position ${prefix.length})`;
      changes.push(change('bounds-tightened', at, message, value, false));
    } else changes.push(...compare({ const: item }, schema, at));
  });
  return changes;
}

/** Values listed before (`enum`, `const`) against a branch that lists none: each must pass its keywords. */
function valueChanges(before: Branch, after: Branch, path: string, compare: CompareNested): SchemaChange[] {
  const failing = new Map<string, Refusal & { values: unknown[] }>();
  const structural: SchemaChange[] = [];
  for (const value of before.values ?? []) {
    if (isObject(value) && after.type === 'object') structural.push(...objectValueChanges(value, after, path, compare));
    if (Array.isArray(value) && after.type === 'array')
      structural.push(...arrayValueChanges(value, after, path, compare));
    for (const refusal of refusals(value, after, before.schema)) {
      const entry = failing.get(refusal.reason) ?? { ...refusal, values: [] };
      entry.values.push(value);
      failing.set(refusal.reason, entry);
    }
  }
  const refused = [...failing.values()].map(({ rule, reason, after: now, values }) => {
    const listed = values.map((v) => JSON.stringify(v)).join(', ');
    return change(rule, path, `no longer accepts ${listed} (${reason})`, values, now);
  });
  return distinct([...refused, ...structural]);
}

/** Values listed after (`enum`, `const`): each value listed before must still be, and a type must become values. */
function listedChanges(before: Branch, after: Branch, values: unknown[], path: string): SchemaChange[] {
  if (!before.values) {
    const listed = values.map((v) => JSON.stringify(v)).join(', ');
    return [change('type-narrowed', path, `now accepts only ${listed}`, before.type, values)];
  }
  // Key order never matters in JSON: a listed object is kept whatever the order of its keys.
  const kept = new Set(values.map(canonical));
  const removed = before.values.filter((v) => !kept.has(canonical(v)));
  if (removed.length === 0) return [];
  if (before.fromConst && after.fromConst) {
    const message = `constant changed from ${JSON.stringify(before.values[0])} to ${JSON.stringify(values[0])}`;
    return [change('const-changed', path, message, before.values[0], values[0])];
  }
  const message = `no longer accepts ${removed.map((v) => JSON.stringify(v)).join(', ')}`;
  return [change('enum-value-removed', path, message, removed, values)];
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
