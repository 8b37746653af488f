import { ValidationError, type ValidationIssue } from '@factline/core';
import { describeValue } from '@factline/core/adapter';

/** The Standard JSON Schema converter a validator exposes on `~standard.jsonSchema`. */
export interface StandardJsonSchemaConverter {
  input(options: { target: string; libraryOptions?: Record<string, unknown> }): Record<string, unknown>;
  output(options: { target: string; libraryOptions?: Record<string, unknown> }): Record<string, unknown>;
}

/** The part of a Standard Schema v1 the check reads: its vendor and, where implemented, its JSON Schema converter. */
export interface StandardSchemaLike {
  readonly '~standard': {
    readonly vendor: string;
    readonly jsonSchema?: StandardJsonSchemaConverter;
  };
}

/**
 * One versioned event or message type, as a schema registry's `definitions()`
 * lists it (or as written by hand in an array). `jsonSchema` stands in for a
 * validator without the Standard JSON Schema interface, and wins when given.
 * A type listed at several versions is checked at each; its highest is current.
 */
export interface SchemaDefinitionLike {
  readonly kind: 'event' | 'message';
  readonly type: string;
  readonly version: number;
  readonly schema?: StandardSchemaLike;
  readonly jsonSchema?: Record<string, unknown>;
}

/** A registry (anything with `definitions()`), or the definitions themselves. */
export type SchemaDefinitionsSource =
  | { definitions(): Iterable<SchemaDefinitionLike> }
  | Iterable<SchemaDefinitionLike>;

/** A definition with its JSON Schema in hand. */
export interface ResolvedDefinition {
  kind: 'event' | 'message';
  type: string;
  version: number;
  schema: Record<string, unknown>;
}

/** The JSON Schema draft asked of every validator; its keywords are what the comparison reads. */
export const jsonSchemaTarget = 'draft-2020-12';

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function listDefinitions(source: SchemaDefinitionsSource): unknown[] {
  if (isObject(source) && typeof source.definitions === 'function') {
    return [...(source.definitions as () => Iterable<unknown>)()];
  }
  if (source !== null && typeof (source as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return [...(source as Iterable<unknown>)];
  }
  throw new ValidationError({
    path: 'definitions',
    message: `must be a schema registry (with definitions()) or an array of definitions, got ${describeValue(source)}`,
  });
}

function describeDefinition(value: Record<string, unknown>, index: number): string {
  return typeof value.kind === 'string' && typeof value.type === 'string'
    ? `${value.kind} '${value.type}'${typeof value.version === 'number' ? ` v${value.version}` : ''}`
    : `definitions[${index}]`;
}

/** The definition's JSON Schema, or the reason none can be had. */
function jsonSchemaOf(definition: Record<string, unknown>): Record<string, unknown> | string {
  if (definition.jsonSchema !== undefined) {
    return isObject(definition.jsonSchema)
      ? definition.jsonSchema
      : `jsonSchema must be an object, got ${describeValue(definition.jsonSchema)}`;
  }
  // arktype's types are functions: any object or function carrying `~standard` will do.
  const { schema: validator } = definition;
  const standard =
    (typeof validator === 'object' && validator !== null) || typeof validator === 'function'
      ? (validator as Record<string, unknown>)['~standard']
      : undefined;
  if (!isObject(standard)) return 'has neither a Standard Schema (schema) nor a jsonSchema';
  const converter = standard.jsonSchema;
  if (!isObject(converter) || typeof converter.input !== 'function') {
    const vendor = typeof standard.vendor === 'string' ? standard.vendor : 'unknown';
    const hint = vendor === 'valibot' ? ' (wrap it with toStandardJsonSchema from @valibot/to-json-schema)' : '';
    return `its ${vendor} schema does not implement Standard JSON Schema (~standard.jsonSchema)${hint}; give jsonSchema on the definition instead`;
  }
  try {
    // The input side: what a stored payload must satisfy to be accepted, defaults still optional.
    const schema = (converter as unknown as StandardJsonSchemaConverter).input({ target: jsonSchemaTarget });
    return isObject(schema) ? schema : `its JSON Schema converter returned ${describeValue(schema)}`;
  } catch (error) {
    return `its schema cannot be written as JSON Schema: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * Reads and checks every definition and converts each schema to JSON Schema.
 * Throws one `ValidationError` listing every definition that is malformed,
 * duplicated or has no JSON Schema.
 */
export function resolveDefinitions(source: SchemaDefinitionsSource): ResolvedDefinition[] {
  const issues: ValidationIssue[] = [];
  const resolved: ResolvedDefinition[] = [];
  const seen = new Set<string>();
  listDefinitions(source).forEach((value, index) => {
    if (!isObject(value)) {
      issues.push({ path: `definitions[${index}]`, message: `must be an object, got ${describeValue(value)}` });
      return;
    }
    const where = describeDefinition(value, index);
    const { kind, type, version } = value;
    if (kind !== 'event' && kind !== 'message') {
      issues.push({ path: `${where}.kind`, message: `must be 'event' or 'message', got ${describeValue(kind)}` });
    }
    if (typeof type !== 'string' || type.length === 0) {
      issues.push({ path: `${where}.type`, message: `must be a non-empty string, got ${describeValue(type)}` });
    }
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
      issues.push({ path: `${where}.version`, message: `must be an integer >= 1, got ${describeValue(version)}` });
    }
    const schema = jsonSchemaOf(value);
    if (typeof schema === 'string') issues.push({ path: where, message: schema });
    const key = `${String(kind)}\u0000${String(type)}\u0000${String(version)}`;
    if (seen.has(key)) issues.push({ path: where, message: `is defined twice` });
    seen.add(key);
    if (issues.length === 0 && typeof schema !== 'string') {
      resolved.push({ kind: kind as 'event' | 'message', type: type as string, version: version as number, schema });
    }
  });
  if (issues.length > 0) throw new ValidationError(issues);
  return resolved.sort((a, b) => a.kind.localeCompare(b.kind) || a.type.localeCompare(b.type) || a.version - b.version);
}
