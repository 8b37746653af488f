/**
 * JSON Schema written by different validators says the same thing in
 * different ways (`type: ['string', 'null']`, `anyOf: [{type:'string'},
 * {type:'null'}]`, `const` or a one-value `enum`, `$ref` into `$defs`). The
 * comparison reads every schema as a list of branches, one per JSON type,
 * with its references followed, so it compares like with like.
 */

/** A JSON type, `any` for a schema that accepts anything, `opaque` for one the check cannot take apart. */
export type BranchType = 'null' | 'boolean' | 'number' | 'integer' | 'string' | 'object' | 'array' | 'any' | 'opaque';

export interface Branch {
  type: BranchType;
  /** The keywords that constrain this branch (the schema it came from, references followed). */
  schema: Record<string, unknown>;
  /** The only values accepted, from `enum` or `const`. */
  values?: unknown[];
  /** The values came from a `const`. */
  fromConst?: boolean;
}

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const jsonTypes = new Set(['null', 'boolean', 'number', 'integer', 'string', 'object', 'array']);

/** Where a `$ref` ('#', '#/$defs/X', '#/definitions/X') points inside `root`; `undefined` for one outside it. */
export function resolvePointer(root: unknown, ref: string): unknown {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) node = node[Number(key)];
    else if (isObject(node)) node = node[key];
    else return undefined;
  }
  return node;
}

/**
 * Follows `$ref`s (a chain of them too) to the schema they name; a reference
 * that cannot be followed comes back as it is, for an `opaque` branch.
 */
export function dereference(node: unknown, root: unknown): unknown {
  let current = node;
  for (let hops = 0; hops < 32 && isObject(current) && typeof current.$ref === 'string'; hops++) {
    const target = resolvePointer(root, current.$ref);
    if (target === undefined) return current;
    current = target;
  }
  return current;
}

function jsonTypeOf(value: unknown): BranchType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') return 'object';
  if (typeof value === 'number') return 'number';
  if (typeof value === 'boolean') return 'boolean';
  return 'string';
}

/** The type a schema without `type` implies by its keywords, `any` when none constrains it. */
function impliedType(schema: Record<string, unknown>): BranchType {
  const has = (...keys: string[]) => keys.some((key) => key in schema);
  if (has('properties', 'additionalProperties', 'required', 'patternProperties', 'minProperties', 'maxProperties')) {
    return 'object';
  }
  if (has('items', 'prefixItems', 'minItems', 'maxItems', 'uniqueItems')) return 'array';
  if (has('minLength', 'maxLength', 'pattern', 'format')) return 'string';
  if (has('minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf')) return 'number';
  if (has('not', 'if', 'dependentSchemas', 'contains')) return 'opaque';
  return 'any';
}

function declaredTypes(schema: Record<string, unknown>): BranchType[] | undefined {
  const { type } = schema;
  const list = typeof type === 'string' ? [type] : Array.isArray(type) ? type : undefined;
  if (list === undefined) return undefined;
  return list.filter((t): t is BranchType => typeof t === 'string' && jsonTypes.has(t));
}

function valueBranches(schema: Record<string, unknown>): Branch[] {
  const fromConst = 'const' in schema;
  const values = fromConst ? [schema.const] : (schema.enum as unknown[]);
  const declared = declaredTypes(schema);
  const groups = new Map<BranchType, unknown[]>();
  for (const value of values) {
    let type = jsonTypeOf(value);
    if (type === 'number' && declared?.includes('integer') && !declared.includes('number')) type = 'integer';
    groups.set(type, [...(groups.get(type) ?? []), value]);
  }
  return [...groups].map(([type, grouped]) => ({ type, schema, values: grouped, fromConst }));
}

/** Merges `allOf` members that are all plain objects into one object schema; `undefined` when they are not. */
function mergeAllOf(members: unknown[], root: unknown): Record<string, unknown> | undefined {
  const properties: Record<string, unknown> = {};
  const required: unknown[] = [];
  let additionalProperties: unknown;
  for (const member of members) {
    const schema = dereference(member, root);
    const parts = branches(schema, root);
    const only = parts[0];
    if (parts.length !== 1 || only?.type !== 'object') return undefined;
    Object.assign(properties, only.schema.properties);
    if (Array.isArray(only.schema.required)) required.push(...only.schema.required);
    if (only.schema.additionalProperties === false) additionalProperties = false;
  }
  return { type: 'object', properties, required, ...(additionalProperties === false ? { additionalProperties } : {}) };
}

/**
 * The branches of a schema: one per JSON type it accepts (a union's members
 * each give theirs), `[]` for `false` (nothing is accepted).
 *
 * @example
 * branches({ type: ['string', 'null'], maxLength: 5 }, root);
 * // [{ type: 'string', schema }, { type: 'null', schema }]
 */
export function branches(node: unknown, root: unknown): Branch[] {
  if (node === false) return [];
  if (node === true || node === undefined) return [{ type: 'any', schema: {} }];
  const schema = dereference(node, root);
  if (!isObject(schema)) return [{ type: 'opaque', schema: { value: schema } }];
  if (typeof schema.$ref === 'string') return [{ type: 'opaque', schema }];
  const union = (Array.isArray(schema.anyOf) ? schema.anyOf : []).concat(
    Array.isArray(schema.oneOf) ? schema.oneOf : [],
  );
  if (union.length > 0) {
    const parts = union.flatMap((member) => branches(member, root));
    return schema.nullable === true ? [...parts, { type: 'null', schema: {} }] : parts;
  }
  if (Array.isArray(schema.allOf)) {
    const { allOf, ...rest } = schema;
    if (allOf.length === 1) return branches({ ...rest, ...(dereference(allOf[0], root) as object) }, root);
    const merged = mergeAllOf(allOf, root);
    return merged ? [{ type: 'object', schema: merged }] : [{ type: 'opaque', schema }];
  }
  const nullable: Branch[] = schema.nullable === true ? [{ type: 'null', schema: {} }] : [];
  if ('const' in schema || Array.isArray(schema.enum)) return [...valueBranches(schema), ...nullable];
  const types = declaredTypes(schema) ?? [impliedType(schema)];
  return [...types.map((type): Branch => ({ type, schema })), ...nullable];
}
