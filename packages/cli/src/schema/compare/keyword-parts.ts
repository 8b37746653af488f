/**
 * What the keyword checks (keywords.ts) and the checks of listed values
 * (listed-values.ts) share: a change, bounds, tuples, field paths, required
 * and dependent names, key patterns.
 */
import type { SchemaChange } from '../report.ts';
import { type Branch, isObject } from './branches.ts';

/** Compares two nested schemas (followed through their own documents' `$ref`s). */
export type CompareNested = (before: unknown, after: unknown, path: string) => SchemaChange[];

export const change = (
  rule: SchemaChange['rule'],
  path: string,
  message: string,
  before: unknown,
  after: unknown,
): SchemaChange => ({ rule, path, message, before: before ?? null, after: after ?? null });

// zod writes the safe-integer range on every integer: no bound a stored value could meet.
export const unbounded = (value: unknown, type: Branch['type']) =>
  type === 'integer' && (value === Number.MAX_SAFE_INTEGER || value === Number.MIN_SAFE_INTEGER);

export interface Bound {
  value: number;
  exclusive: boolean;
  keyword: string;
}

export function bound(
  schema: Record<string, unknown>,
  side: 'lower' | 'upper',
  type: Branch['type'],
): Bound | undefined {
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

export const describeBound = (b: Bound, side: 'lower' | 'upper') =>
  `${side === 'lower' ? (b.exclusive ? '>' : '>=') : b.exclusive ? '<' : '<='} ${b.value}`;

// multipleOf on decimals: 0.3 / 0.1 is 2.9999999999999996 in floating point (and 0.3 % 0.1 is 0.09999999999999998).
export const isMultiple = (value: number, step: number) => Math.abs(value / step - Math.round(value / step)) < 1e-9;

/** Draft-07 tuples (`items: [...]`, `additionalItems`) read as 2020-12 (`prefixItems`, `items`). */
export function tupleOf(schema: Record<string, unknown>): { prefix: unknown[]; rest: unknown } {
  if (Array.isArray(schema.items)) return { prefix: schema.items, rest: schema.additionalItems ?? true };
  return { prefix: Array.isArray(schema.prefixItems) ? schema.prefixItems : [], rest: schema.items ?? true };
}

export const fieldPath = (path: string, key: string) =>
  /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;

export const stringList = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];

/** Extra properties: `false` refuses them, a schema constrains them, absent or `true` allows any. */
export function extraProperties(schema: Record<string, unknown>): unknown {
  const extra = schema.additionalProperties ?? schema.unevaluatedProperties ?? true;
  return isObject(extra) && Object.keys(extra).length === 0 ? true : extra;
}

/** The names each field requires when present: `dependentRequired`, and the list entries of draft-07 `dependencies`. */
export function dependentNames(schema: Record<string, unknown>): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  for (const source of [schema.dependencies, schema.dependentRequired]) {
    for (const [key, names] of Object.entries(isObject(source) ? source : {})) {
      if (Array.isArray(names)) found.set(key, new Set([...(found.get(key) ?? []), ...stringList(names)]));
    }
  }
  return found;
}

/** The key patterns of an object (`patternProperties`, an arktype index signature), each with its fields' schema. */
export const patternsOf = (schema: Record<string, unknown>): Map<string, unknown> =>
  new Map(isObject(schema.patternProperties) ? Object.entries(schema.patternProperties) : []);

export const patternPath = (path: string, source: string) => `${path}[/${source}/]`;

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

/** `pattern` as JSON Schema reads it (ECMA-262, unicode); `undefined` when JavaScript cannot compile it. */
export function patternOf(source: string): RegExp | undefined {
  for (const flags of ['u', '']) {
    try {
      return new RegExp(source, flags);
    } catch {}
  }
  return undefined;
}
