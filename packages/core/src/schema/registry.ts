import { SchemaError, type SchemaKind, UpcastError, ValidationError } from '../errors/index.ts';
import { checkOptions, type OptionSpecOf } from '../options/check-options.ts';
import type { SchemaDefinition } from './define.ts';
import { checkDefinitions } from './registry-checks.ts';
import { isThenable, runSchema, toValidationIssues } from './validate.ts';

export interface SchemaRegistryOptions {
  /**
   * Types the registry does not define: `'pass'` (default) reads and writes
   * them as they are; `'error'` refuses to append them and fails reading
   * them (`SchemaError`).
   */
  unknownTypes?: 'pass' | 'error';
  /**
   * Also validate what is read (after upcasting) against the current schema:
   * a stored item that does not fit fails with a `ValidationError`. Default
   * false: reads trust what appends validated.
   */
  validateOnRead?: boolean;
}

/** What `encode` gives back: the data to store and the schema version to stamp (`undefined`: a type not defined, passed as it is). */
export interface EncodedData {
  data: unknown;
  schemaVersion: number | undefined;
}

/** What `decode` gives back when the stored item needed work: its data at the current version. */
export interface DecodedData {
  data: unknown;
  schemaVersion: number;
}

/**
 * The versioned types of an application, checked at creation. Stores,
 * outboxes and consumers take it as their `schemas` option; every read path
 * decodes through its `decode`, every write path encodes through `encode`.
 */
export interface SchemaRegistry {
  readonly unknownTypes: 'pass' | 'error';
  readonly validateOnRead: boolean;
  /**
   * Validates `data` of `type` against its current schema (awaiting an
   * asynchronous validator: the result is a promise only then) and returns
   * the schema's output with the version to stamp. Throws `ValidationError`
   * listing every issue (paths under `data`).
   */
  encode(kind: SchemaKind, type: string, data: unknown): EncodedData | Promise<EncodedData>;
  /**
   * Brings data stored at `schemaVersion` to the current version through the
   * upcasters (validating it when `validateOnRead`). `undefined` when nothing
   * is due (a type passed through, or already current): a Map look-up and a
   * compare. Throws `SchemaError` (a version newer than the current one, an
   * unknown type under `unknownTypes: 'error'`) or `UpcastError`.
   */
  decode(
    kind: SchemaKind,
    type: string,
    schemaVersion: number,
    data: unknown,
  ): DecodedData | undefined | Promise<DecodedData | undefined>;
  /** The current definition of a type, if defined. */
  definition(kind: SchemaKind, type: string): SchemaDefinition | undefined;
  /** Every definition (kind, type, version, schema, upcasters), in the order given: for the breaking-change check. */
  definitions(): readonly SchemaDefinition[];
}

const optionsSpec: OptionSpecOf<SchemaRegistryOptions> = {
  unknownTypes: { oneOf: ['pass', 'error'] },
  validateOnRead: 'boolean',
};

/**
 * Creates the registry of an application's event and message types. Every
 * problem of the definitions is one `ValidationError` here, at start, not at
 * the first read: a duplicate type (per kind), a version that is not an
 * integer >= 1, a missing upcaster step, an upcaster for the current version
 * or later, a schema that is not a Standard Schema.
 *
 * @example
 * const schemas = createSchemaRegistry([OrderPlaced, OrderPaid, ShipOrder], { unknownTypes: 'error' });
 * const store = getSqliteEventStore({ path: 'orders.db', schemas });
 */
export function createSchemaRegistry(
  definitions: readonly SchemaDefinition[],
  options?: SchemaRegistryOptions,
): SchemaRegistry {
  const checked = checkOptions(options, optionsSpec, 'createSchemaRegistry') ?? {};
  const issues = checkDefinitions(definitions);
  if (issues.length > 0) throw new ValidationError(issues);
  const list = Object.freeze([...definitions]);
  const byKind = { event: new Map<string, SchemaDefinition>(), message: new Map<string, SchemaDefinition>() };
  for (const definition of list) byKind[definition.kind].set(definition.type, definition);
  const unknownTypes = checked.unknownTypes ?? 'pass';
  const refuseUnknown = unknownTypes === 'error';
  const validateOnRead = checked.validateOnRead ?? false;

  const encoded = (definition: SchemaDefinition, result: Awaited<ReturnType<typeof runSchema>>): EncodedData => {
    if (result.issues) throw new ValidationError(toValidationIssues(result.issues, 'data'));
    return { data: result.value, schemaVersion: definition.version };
  };

  /**
   * Validates upcast data against the current schema (validateOnRead). The read gives the data as stored or
   * upcast, never the schema's output: stored data is already an output, and a transform run on it again would
   * apply twice.
   */
  const checkRead = (definition: SchemaDefinition, from: number, data: unknown) => {
    const context = ` (reading ${definition.kind} '${definition.type}' stored at version ${from})`;
    const done = (result: Awaited<ReturnType<typeof runSchema>>): DecodedData => {
      if (result.issues) throw new ValidationError(toValidationIssues(result.issues, 'data', context));
      return { data, schemaVersion: definition.version };
    };
    const result = runSchema(definition.schema, data);
    return isThenable(result) ? Promise.resolve(result).then(done) : done(result);
  };

  /** The upcaster chain from `from` to the current version, then the read validation if asked. */
  const upcast = (definition: SchemaDefinition, from: number, stored: unknown) => {
    const { kind, type, version } = definition;
    if (!Number.isSafeInteger(from) || from < 1) {
      throw new SchemaError(kind, type, from, 'a schema version is an integer >= 1');
    }
    if (from > version) {
      throw new SchemaError(kind, type, from, `it is newer than the registry's current version ${version}`);
    }
    let data = stored;
    for (let at = from; at < version; at++) {
      try {
        data = (definition.upcasters[at] as (data: unknown) => unknown)(data);
      } catch (error) {
        throw new UpcastError(kind, type, at, error);
      }
      if (isThenable(data))
        throw new UpcastError(kind, type, at, new Error('an upcaster must be synchronous (it returned a promise)'));
    }
    return validateOnRead ? checkRead(definition, from, data) : { data, schemaVersion: version };
  };

  return {
    unknownTypes,
    validateOnRead,

    encode(kind, type, data) {
      const definition = byKind[kind].get(type);
      if (definition === undefined) {
        if (refuseUnknown && !isWorkflowRecord(type)) {
          throw new ValidationError({
            path: 'type',
            message: `'${type}' is not a defined ${kind} type (unknownTypes: 'error')`,
          });
        }
        return { data, schemaVersion: undefined };
      }
      const result = runSchema(definition.schema, data);
      return isThenable(result)
        ? Promise.resolve(result).then((r) => encoded(definition, r))
        : encoded(definition, result);
    },

    decode(kind, type, schemaVersion, data) {
      // The common case costs a Map look-up and a compare.
      const definition = byKind[kind].get(type);
      if (definition === undefined) {
        if (refuseUnknown && !isWorkflowRecord(type))
          throw new SchemaError(kind, type, schemaVersion, `it is not a defined ${kind} type (unknownTypes: 'error')`);
        return undefined;
      }
      if (schemaVersion === definition.version && !validateOnRead) return undefined;
      return upcast(definition, schemaVersion, data);
    },

    definition: (kind, type) => byKind[kind].get(type),
    definitions: () => list,
  };
}

/** A workflow instance's own records (`$workflow.input`, …): Factline's, never the application's to define. */
const isWorkflowRecord = (type: string) => type.startsWith('$workflow.');
