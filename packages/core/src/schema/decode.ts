import { SchemaError, type SchemaKind } from '../errors/index.ts';
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

/** Digits of a whole number >= 1: no sign, space, point, exponent or leading zero. */
const VERSION_TEXT = /^[1-9][0-9]*$/;

/**
 * The version a `factline-schema-version` header gives: 1 when there is
 * none; `undefined` when its text is not the digits of a whole number >= 1
 * (" 1 ", "1.0", "0x1", "1e0", "01", "" are not) or is past the safe integers.
 *
 * @example
 * schemaVersionOfHeader('2'); // 2
 * schemaVersionOfHeader('02'); // undefined
 */
export function schemaVersionOfHeader(header: unknown): number | undefined {
  if (header === undefined) return 1;
  if (typeof header !== 'string' || !VERSION_TEXT.test(header)) return undefined;
  const version = Number(header);
  return Number.isSafeInteger(version) ? version : undefined;
}

/**
 * The schema version a message carries in its header (1 when it has none, as
 * for events); `NaN` when the header is no version (see `schemaVersionOfHeader`).
 *
 * @example
 * messageSchemaVersion(createMessage({ type: 'ShipOrder', data })); // 1
 */
export function messageSchemaVersion(message: Message): number {
  return schemaVersionOfHeader(message.headers?.[SCHEMA_VERSION_HEADER]) ?? Number.NaN;
}

/**
 * A received message at its type's current version, decoded like events
 * are: a message made from an event (it carries `factline-stream-id`) by
 * the registry's event types, any other by its message types. The same
 * object when nothing is due; a new one with the current version in its
 * `factline-schema-version` header when upcast. A header that is no version
 * (`schemaVersionOfHeader`) on a type the registry reads is a `SchemaError`
 * naming its text; a type it does not define passes as it is.
 *
 * @example
 * const current = await decodeMessage(schemas, delivery.message);
 */
export function decodeMessage(registry: SchemaRegistry, message: Message): Message | Promise<Message> {
  const kind = messageKind(message);
  const version = messageSchemaVersion(message);
  if (Number.isNaN(version) && (registry.definition(kind, message.type) || registry.unknownTypes === 'error')) {
    throw new SchemaError(kind, message.type, version, 'it is no schema version (digits of a whole number >= 1)', {
      header: String(message.headers[SCHEMA_VERSION_HEADER]),
    });
  }
  const decoded = registry.decode(kind, message.type, version, message.data);
  if (decoded === undefined) return message;
  const upcast = (d: DecodedData | undefined): Message =>
    d === undefined
      ? message
      : { ...message, data: d.data, headers: { ...message.headers, [SCHEMA_VERSION_HEADER]: String(d.schemaVersion) } };
  return isThenable(decoded) ? Promise.resolve(decoded).then(upcast) : upcast(decoded);
}
