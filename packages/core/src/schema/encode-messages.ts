import { ValidationError, type ValidationIssue } from '../errors/index.ts';
import { type Message, type MessageInput, prepareMessages } from '../messaging/message.ts';
import { checkJson } from '../store/json-checks.ts';
import { messageKind, SCHEMA_VERSION_HEADER } from './decode.ts';
import type { EncodedData, SchemaRegistry } from './registry.ts';
import { isThenable } from './validate.ts';

/** One built message encoded, or its issues recorded under `messages[index]` (`undefined` marks a failure). */
function encodeOne(
  registry: SchemaRegistry,
  message: Message,
  index: number,
  issues: ValidationIssue[][],
): Message | undefined | Promise<Message | undefined> {
  const path = `messages[${index}]`;
  const mine: ValidationIssue[] = [];
  issues[index] = mine;
  const kind = messageKind(message);
  const definition = registry.definition(kind, message.type);
  const given = message.headers[SCHEMA_VERSION_HEADER];
  if (definition && given !== undefined && given !== String(definition.version)) {
    mine.push({
      path: `${path}.headers.${SCHEMA_VERSION_HEADER}`,
      message: `'${message.type}' is at version ${definition.version}: leave the header out (it is stamped) or give '${definition.version}', got '${given}'`,
    });
  }
  const done = (encoded: EncodedData) => {
    // The schema's output is what is stored and sent: it must be JSON too (a coercion to a bigint, a Date
    // or a Map is not), named here rather than failing later as a storage or transport error.
    if (encoded.data !== message.data) checkJson(encoded.data, `${path}.data`, mine);
    if (mine.length > 0) return undefined;
    if (encoded.schemaVersion === undefined) return message;
    const headers = { ...message.headers, [SCHEMA_VERSION_HEADER]: String(encoded.schemaVersion) };
    return { ...message, data: encoded.data, headers };
  };
  const failed = (error: unknown) => {
    if (!(error instanceof ValidationError)) throw error;
    for (const issue of error.issues) mine.push({ path: `${path}.${issue.path}`, message: issue.message });
    return undefined;
  };
  try {
    const encoded = registry.encode(kind, message.type, message.data);
    return isThenable(encoded) ? Promise.resolve(encoded).then(done, failed) : done(encoded);
  } catch (error) {
    return failed(error);
  }
}

/**
 * Builds messages (as `createMessage` does) and validates each of a defined
 * type against its current schema: the data becomes the schema's output and
 * the `factline-schema-version` header (headers are strings) carries the
 * current version. One `ValidationError` lists every issue of every message.
 * Synchronous when every validator is; a promise when one is asynchronous.
 * The outboxes call it on enqueue when given `schemas`; call it yourself to
 * publish validated messages.
 *
 * @example
 * const [message] = await encodeMessages(schemas, [{ type: 'ShipOrder', data: { orderId: 'o-1', express: true } }]);
 * await transport.publish('shipping', [message]);
 */
export function encodeMessages(
  registry: SchemaRegistry,
  messages: readonly (Message | MessageInput)[],
  now: () => number = Date.now,
): Message[] | Promise<Message[]> {
  const built = prepareMessages(messages, now);
  const issues: ValidationIssue[][] = [];
  const encoded = built.map((message, index) => encodeOne(registry, message, index, issues));
  const finish = (list: readonly (Message | undefined)[]): Message[] => {
    const all = issues.flat();
    if (all.length > 0) throw new ValidationError(all);
    return list as Message[];
  };
  return encoded.some(isThenable) ? Promise.all(encoded).then(finish) : finish(encoded as (Message | undefined)[]);
}

/**
 * `encodeMessages` for an outbox whose enqueue is synchronous (it writes
 * inside the caller's synchronous transaction): a message type with an
 * asynchronous validator is refused, naming what to do instead.
 *
 * @example
 * const built = schemas ? encodeMessagesNow(schemas, messages, now) : prepareMessages(messages, now);
 */
export function encodeMessagesNow(
  registry: SchemaRegistry,
  messages: readonly (Message | MessageInput)[],
  now: () => number = Date.now,
): Message[] {
  const encoded = encodeMessages(registry, messages, now);
  if (!isThenable(encoded)) return encoded;
  encoded.then(undefined, () => undefined); // its outcome is not waited for: the enqueue is refused
  throw new ValidationError({
    path: 'messages',
    message:
      'a message type has an asynchronous validator, and this enqueue runs inside a synchronous transaction: ' +
      'validate first with `await encodeMessages(schemas, messages)` and enqueue the result on an outbox without `schemas`',
  });
}
