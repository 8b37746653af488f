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
  const objectKeywords = ['properties', 'additionalProperties', 'required', 'patternProperties', 'minProperties'];
  if (has(...objectKeywords, 'maxProperties', 'dependentRequired', 'dependencies')) {
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

// Key order never matters in JSON Schema; a stable text compares two schemas the check does not take apart.
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/** Keywords that describe a schema without constraining values. */
const annotations = new Set([
  '$schema',
  '$id',
  '$comment',
  '$defs',
  'definitions',
  'title',
  'description',
  'examples',
  'default',
  'deprecated',
  'readOnly',
  'writeOnly',
]);

/** The keywords of an object member `mergeAllOf` knows how to merge; any other makes the `allOf` opaque. */
const mergeable = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'propertyNames',
  'minProperties',
  'maxProperties',
  ...annotations,
]);

/** A branch that only names its type. */
const bareType = (branch: Branch) =>
  !branch.values &&
  branch.type !== 'opaque' &&
  Object.keys(branch.schema).every((key) => key === 'type' || key === 'nullable' || annotations.has(key));

/** Every branch of `narrower` is of a type `bare` accepts. */
const coversTypes = (bare: Branch[], narrower: Branch[]) =>
  narrower.every(({ type }) => bare.some((b) => b.type === type || (b.type === 'number' && type === 'integer')));

/**
 * The members of an `allOf` that each constrain something the others do not:
 * duplicates, `true` (`{}`) and a bare type another member narrows within
 * (`{type: ['string', 'number']}` beside `{type: 'string', maxLength: 5}`) dropped.
 * `[false]` when one refuses everything.
 */
function essentialMembers(members: unknown[], root: unknown): unknown[] {
  if (members.some((m) => dereference(m, root) === false)) return [false];
  const unique = [...new Map(members.map((m) => [canonical(dereference(m, root)), m])).values()];
  const kept = unique.map((member) => ({ member, parts: branches(member, root) }));
  for (let i = kept.length - 1; i >= 0; i--) {
    const { parts } = kept[i] as (typeof kept)[number];
    const redundant =
      parts.every((b) => b.type === 'any') ||
      (parts.every(bareType) && kept.some((other, j) => j !== i && coversTypes(parts, other.parts)));
    if (redundant) kept.splice(i, 1);
  }
  return kept.map((k) => k.member);
}

/** One schema that accepts what every one of `members` accepts: `true` for none, an `allOf` for several. */
function intersection(members: unknown[], root: unknown): unknown {
  const kept = essentialMembers(members, root);
  return kept.length === 0 ? true : kept.length === 1 ? kept[0] : { allOf: kept };
}

/**
 * Merges `allOf` members that are all plain objects into one object schema;
 * `undefined` when they are not, or one has a keyword it cannot merge
 * (`patternProperties`, `unevaluatedProperties`, ...). A member's extra
 * properties schema applies to the fields the other members declare too.
 */
function mergeAllOf(members: unknown[], root: unknown): Record<string, unknown> | undefined {
  const objects: Record<string, unknown>[] = [];
  for (const member of members) {
    const parts = branches(member, root);
    const only = parts[0];
    if (parts.length === 1 && only?.type === 'any') continue;
    if (parts.length !== 1 || only?.type !== 'object' || only.values) return undefined;
    if (Object.keys(only.schema).some((key) => !mergeable.has(key))) return undefined;
    objects.push(only.schema);
  }
  if (objects.length === 0) return undefined;
  const fieldsOf = (schema: Record<string, unknown>) => (isObject(schema.properties) ? schema.properties : {});
  const extraOf = (schema: Record<string, unknown>) => schema.additionalProperties ?? true;
  const properties: Record<string, unknown> = {};
  for (const key of new Set(objects.flatMap((o) => Object.keys(fieldsOf(o))))) {
    properties[key] = intersection(
      objects.map((o) => (key in fieldsOf(o) ? fieldsOf(o)[key] : extraOf(o))),
      root,
    );
  }
  const merged: Record<string, unknown> = {
    type: 'object',
    properties,
    required: [...new Set(objects.flatMap((o) => (Array.isArray(o.required) ? o.required : [])))],
  };
  const extra = intersection(objects.map(extraOf), root);
  if (extra !== true) merged.additionalProperties = extra;
  const keys = intersection(
    objects.map((o) => o.propertyNames ?? true),
    root,
  );
  if (keys !== true) merged.propertyNames = keys;
  const sizes = (key: string) => objects.map((o) => o[key]).filter((v): v is number => typeof v === 'number');
  if (sizes('minProperties').length > 0) merged.minProperties = Math.max(...sizes('minProperties'));
  if (sizes('maxProperties').length > 0) merged.maxProperties = Math.min(...sizes('maxProperties'));
  return merged;
}

// A merged allOf is a new object: kept per schema so that comparing it again meets the same one (a cycle ends).
const allOfBranches = new WeakMap<object, Branch[]>();

function mergedBranches(schema: Record<string, unknown>, allOf: unknown[], root: unknown): Branch[] {
  const { allOf: _, ...rest } = schema;
  const members = essentialMembers(allOf, root);
  if (members.length === 0) return branches(rest, root);
  // Keywords beside the allOf constrain too: they add to a lone member, or merge as one more.
  const beside = Object.keys(rest).filter((key) => !annotations.has(key));
  const only = members.length === 1 ? dereference(members[0], root) : undefined;
  if (only === false) return [];
  if (isObject(only) && !beside.some((key) => key in only)) return branches({ ...rest, ...only }, root);
  const merged = mergeAllOf(beside.length > 0 ? [rest, ...members] : members, root);
  return merged ? [{ type: 'object', schema: merged }] : [{ type: 'opaque', schema }];
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
    const known = allOfBranches.get(schema);
    if (known) return known;
    // A member that refers back to its own allOf reads as opaque rather than recursing forever.
    allOfBranches.set(schema, [{ type: 'opaque', schema }]);
    const found = mergedBranches(schema, schema.allOf, root);
    allOfBranches.set(schema, found);
    return found;
  }
  const nullable: Branch[] = schema.nullable === true ? [{ type: 'null', schema: {} }] : [];
  if ('const' in schema || Array.isArray(schema.enum)) return [...valueBranches(schema), ...nullable];
  const types = declaredTypes(schema) ?? [impliedType(schema)];
  return [...types.map((type): Branch => ({ type, schema })), ...nullable];
}
