/**
 * The checks of values an `enum` or `const` listed before: each must still
 * pass the new schema, objects and arrays taken apart (fields, key patterns,
 * sizes, tuple positions), or the changes name what refuses it.
 */
import type { SchemaChange } from '../report.ts';
import { type Branch, canonical, isObject } from './branches.ts';
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

/** Why a value listed before fails a keyword of `after`: the rule it breaks and the keyword's value. */
interface Refusal {
  rule: SchemaChange['rule'];
  reason: string;
  after: unknown;
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
export function valueChanges(before: Branch, after: Branch, path: string, compare: CompareNested): SchemaChange[] {
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
export function listedChanges(before: Branch, after: Branch, values: unknown[], path: string): SchemaChange[] {
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
