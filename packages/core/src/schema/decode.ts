import type { SchemaKind } from '../errors/index.ts';
import type { Message } from '../messaging/message.ts';
import type { RecordedEvent } from '../store/types.ts';
import type { DecodedData, SchemaRegistry } from './registry.ts';
import { isThenable } from './validate.ts';

/** The header a message's schema version travels in (strings only; absent = 1). */
export const SCHEMA_VERSION_HEADER = 'factline-schema-version';
/** Set on messages made from events (`messageFromEvent`): their type is an event type. */
const STREAM_ID_HEADER = 'factline-stream-id';

/**
 * A recorded event at its type's current version: the one place every read
 * path (readStream, readAll, the projection runner) decodes a stored event.
 * The same object when nothing is due; a new one, `schemaVersion` current,
 * when upcast. A promise only with `validateOnRead` and an asynchronous
 * schema. Throws `SchemaError`, `UpcastError` or `ValidationError`.
 *
 * @example
 * const current = await decodeEvent(schemas, storedEvent);
 */
export function decodeEvent(registry: SchemaRegistry, event: RecordedEvent): RecordedEvent | Promise<RecordedEvent> {
  const decoded = registry.decode('event', event.type, event.schemaVersion, event.data);
  if (decoded === undefined) return event;
  const upcast = (d: DecodedData | undefined): RecordedEvent =>
    d === undefined ? event : { ...event, data: d.data, schemaVersion: d.schemaVersion };
  return isThenable(decoded) ? Promise.resolve(decoded).then(upcast) : upcast(decoded);
}

/**
 * Which types a message is read by: a message made from an event (`factline-stream-id`) by the event types.
 *
 * @example
 * const definition = schemas.definition(messageKind(message), message.type);
 */
export function messageKind(message: Pick<Message, 'headers'>): SchemaKind {
  return message.headers?.[STREAM_ID_HEADER] === undefined ? 'message' : 'event';
}

/**
 * The schema version a message carries in its header (1 when it has none, as for events).
 *
 * @example
 * messageSchemaVersion(createMessage({ type: 'ShipOrder', data })); // 1
 */
export function messageSchemaVersion(message: Message): number {
  const header = message.headers?.[SCHEMA_VERSION_HEADER];
  return header === undefined ? 1 : Number(header);
}

/**
 * A received message at its type's current version, decoded like events
 * are: a message made from an event (it carries `factline-stream-id`) by
 * the registry's event types, any other by its message types. The same
 * object when nothing is due; a new one with the current version in its
 * `factline-schema-version` header when upcast.
 *
 * @example
 * const current = await decodeMessage(schemas, delivery.message);
 */
export function decodeMessage(registry: SchemaRegistry, message: Message): Message | Promise<Message> {
  const decoded = registry.decode(messageKind(message), message.type, messageSchemaVersion(message), message.data);
  if (decoded === undefined) return message;
  const upcast = (d: DecodedData | undefined): Message =>
    d === undefined
      ? message
      : { ...message, data: d.data, headers: { ...message.headers, [SCHEMA_VERSION_HEADER]: String(d.schemaVersion) } };
  return isThenable(decoded) ? Promise.resolve(decoded).then(upcast) : upcast(decoded);
}
