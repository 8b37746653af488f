import { type SchemaKind, ValidationError, WorkflowError } from '../errors/index.ts';
import { quoteText } from '../errors/quote.ts';
import { describeValue } from '../options/check-options.ts';
import { messageKind, SCHEMA_VERSION_HEADER, schemaVersionOfHeader } from '../schema/decode.ts';
import type { DecodedData, SchemaRegistry } from '../schema/registry.ts';
import { schemaSourceOf } from '../schema/schema-store.ts';
import { isThenable } from '../schema/validate.ts';
import type { EventStore, RecordedEvent } from '../store/types.ts';
import { type InputRecordData, workflowEventTypes as T } from './records.ts';
import type { WorkflowInput } from './types.ts';

/**
 * The schema version an input's data is at, and whether the registry reads
 * its type among the event types or the message types. An input record
 * carries it; so does a scheduled timer's message, for the input it becomes.
 */
export interface WorkflowInputSchema {
  kind: SchemaKind;
  version: number;
}

/** The registry a workflow decodes its inputs by: its store's (`schemas`), if any. */
export const inputRegistryOf = (store: EventStore): SchemaRegistry | undefined => schemaSourceOf(store)?.registry;

/**
 * What a message received says of its data, as a consumer's decoding reads
 * it: the event types for a message made from an event (`factline-stream-id`),
 * else the message types; the version of its `factline-schema-version`
 * header, 1 without one. A header that is no version is a `ValidationError`.
 */
export function receivedSchema(message: WorkflowInput): WorkflowInputSchema {
  const headers = (message as { headers?: Record<string, string> }).headers;
  const header = headers?.[SCHEMA_VERSION_HEADER];
  const version = schemaVersionOfHeader(header);
  if (version === undefined) {
    throw new ValidationError({
      path: `message.headers.${SCHEMA_VERSION_HEADER}`,
      message: `must be a schema version (digits of a whole number >= 1), got ${typeof header === 'string' ? quoteText(header) : describeValue(header)}`,
    });
  }
  return { kind: messageKind({ headers: headers ?? {} }), version };
}

/** The kind a registry defines a type as, message types first; `undefined` when it defines neither. */
function definedKind(registry: SchemaRegistry, type: string): SchemaKind | undefined {
  if (registry.definition('message', type)) return 'message';
  return registry.definition('event', type) ? 'event' : undefined;
}

/** What a scheduled message is stamped with: its type's current version, when the registry defines the type. */
export function scheduledSchema(registry: SchemaRegistry | undefined, type: string): WorkflowInputSchema | undefined {
  if (registry === undefined) return undefined;
  const kind = definedKind(registry, type);
  const definition = kind === undefined ? undefined : registry.definition(kind, type);
  return kind === undefined || definition === undefined ? undefined : { kind, version: definition.version };
}

/**
 * An input record with its message at its type's current version: the
 * registry's upcasters from the version the record says (`schema`; without
 * one, version 1 of the kind the registry defines its type as). The same
 * object when nothing is due, or the registry does not define the type (it
 * is kept as it came, whatever `unknownTypes` says: the input was admitted
 * by the path that delivered it). A promise only when a schema validates
 * asynchronously on read. Throws the registry's error (`UpcastError`,
 * `SchemaError`, `ValidationError`).
 *
 * @example
 * const current = await currentInput(schemas, { message, schema: { kind: 'message', version: 1 } });
 */
export function currentInput(
  registry: SchemaRegistry | undefined,
  record: InputRecordData,
): InputRecordData | Promise<InputRecordData> {
  if (registry === undefined) return record;
  const { message, schema } = record;
  const kind = schema === undefined ? definedKind(registry, message.type) : schema.kind;
  if (kind !== 'event' && kind !== 'message') {
    if (schema === undefined) return record;
    throw new ValidationError({
      path: 'schema.kind',
      message: `must be 'event' or 'message', got ${describeValue(kind)}`,
    });
  }
  if (registry.definition(kind, message.type) === undefined) return record;
  const decoded = registry.decode(kind, message.type, schema?.version ?? 1, message.data);
  const upcast = (d: DecodedData | undefined): InputRecordData => {
    if (d === undefined) return schema === undefined ? { ...record, schema: { kind, version: 1 } } : record;
    return { ...record, message: { ...message, data: d.data }, schema: { kind, version: d.schemaVersion } };
  };
  return isThenable(decoded) ? Promise.resolve(decoded).then(upcast) : upcast(decoded);
}

/**
 * A recorded input at its current version, for `evolve` or a retry's
 * `decide`: a failure to decode it is a `WorkflowError` naming the instance
 * and the input, its `cause` the registry's error, as retryable as that one
 * (a release with a fixed upcaster reads it). A promise only when decoding is.
 */
export function currentRecordedInput(
  registry: SchemaRegistry | undefined,
  streamId: string,
  record: InputRecordData,
): InputRecordData | Promise<InputRecordData> {
  const failed = (error: unknown): never => {
    const { message, schema } = record;
    const at = schema === undefined ? 'without a schema version' : `at ${schema.kind} version ${schema.version}`;
    const reason = error instanceof Error ? error.message : String(error);
    const retryable = (error as { retryable?: unknown } | null)?.retryable === true;
    throw new WorkflowError(
      streamId,
      `its input '${message.type}' (${message.id}) recorded ${at} cannot be read: ${reason}`,
      {
        cause: error,
        retryable,
      },
    );
  };
  try {
    const current = currentInput(registry, record);
    return isThenable(current) ? Promise.resolve(current).catch(failed) : current;
  } catch (error) {
    return failed(error);
  }
}

/**
 * An instance's recorded events with every input (`$workflow.input`) at its
 * current version, for the fold; the events themselves when the store has no
 * registry. Parked and deferred inputs are decoded when a retry decides them.
 */
export async function currentRecords(
  registry: SchemaRegistry | undefined,
  streamId: string,
  events: readonly RecordedEvent[],
): Promise<readonly RecordedEvent[]> {
  if (registry === undefined) return events;
  const decoded: RecordedEvent[] = [];
  for (const event of events) {
    if (event.type !== T.input) {
      decoded.push(event);
      continue;
    }
    const record = event.data as InputRecordData;
    const read = currentRecordedInput(registry, streamId, record);
    // Awaited only when a schema validates asynchronously: a long stream's fold stays one synchronous loop.
    const current = isThenable(read) ? await read : read;
    decoded.push(current === record ? event : { ...event, data: current });
  }
  return decoded;
}
