import { ValidationError, type ValidationIssue } from '../errors/index.ts';
import { describeValue } from '../options/check-options.ts';
import { checkJson, isPlainObject, isStorableText, type JsonSizeBound, plainJsonBound } from '../store/json-checks.ts';
import {
  checkMetadataIds,
  checkName,
  cleanMetadataIds,
  defaultStoreLimits,
  isCleanName,
  MAX_NAME_LENGTH,
} from '../store/validation.ts';
import type { Message } from './message.ts';

// Keys default to stream ids, whose limit a store may raise: only the kind of characters is checked.
const NO_LIMIT = Number.POSITIVE_INFINITY;

const join = (prefix: string, name: string) => (prefix === '' ? name : `${prefix}.${name}`);

const validDate = (value: unknown) => value instanceof Date && !Number.isNaN(value.getTime());

function cleanHeaders(value: unknown): boolean {
  if (!isPlainObject(value)) return false;
  for (const name of Object.keys(value)) {
    const header = value[name];
    if (!isStorableText(name) || typeof header !== 'string' || !isStorableText(header)) return false;
  }
  return true;
}

/** The fields a `MessageInput` may have: any other (`deliverat`, `delay`) is a mistake, not ignored. */
const INPUT_KEYS: ReadonlySet<string> = new Set(['type', 'data', 'id', 'key', 'metadata', 'headers', 'deliverAt']);

/** The first key of `value` that no `MessageInput` has, if any. */
function unknownInputKey(value: object): string | undefined {
  for (const name in value) if (!INPUT_KEYS.has(name)) return name;
  return undefined;
}

/**
 * Whether `checkMessage` finds no problem with `value`: the usual message of
 * plain JSON checked without building a path, a set or an issue. Whatever it
 * is unsure of (a problem, a `toJSON`, a size near the limit) it leaves to
 * `checkMessage`'s full walk.
 */
function isCleanMessage(value: unknown, built: boolean): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  if (!built && unknownInputKey(value) !== undefined) return false;
  const message = value as Partial<Message>;
  if (!isCleanName(message.type, MAX_NAME_LENGTH)) return false;
  if ((built || message.id !== undefined) && !isCleanName(message.id, MAX_NAME_LENGTH)) return false;
  if ((built || message.key !== undefined) && !isCleanName(message.key, NO_LIMIT)) return false;
  if (message.data === undefined) return false;
  let bytes = plainJsonBound(message.data);
  if (bytes < 0) return false;
  if (built || message.metadata !== undefined) {
    const metadata = message.metadata;
    if (!isPlainObject(metadata) || !cleanMetadataIds(metadata)) return false;
    const metadataBytes = plainJsonBound(metadata);
    if (metadataBytes < 0) return false;
    bytes += metadataBytes;
  }
  if ((built || message.headers !== undefined) && !cleanHeaders(message.headers)) return false;
  if (built && !validDate(message.createdAt)) return false;
  if (message.deliverAt !== undefined && !validDate(message.deliverAt)) return false;
  return bytes <= defaultStoreLimits.maxEventBytes;
}

/**
 * Records every problem of one message under `prefix` (`''` for the message
 * itself, `messages[2]` in a batch), by the rules event data follows: names
 * without control characters or lone surrogates, data and metadata that JSON
 * carries faithfully, within the event size limit. `built`: a `Message` as
 * transports take it, whose `id`, `key`, `headers`, `metadata` and
 * `createdAt` are required; otherwise a `MessageInput`.
 */
export function checkMessage(value: unknown, prefix: string, built: boolean, issues: ValidationIssue[]): void {
  if (isCleanMessage(value, built)) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    issues.push({ path: prefix || 'message', message: `must be a message object, got ${describeValue(value)}` });
    return;
  }
  const message = value as Partial<Message>;
  const before = issues.length;
  if (!built) {
    for (const name of Object.keys(value)) {
      if (!INPUT_KEYS.has(name)) {
        issues.push({
          path: join(prefix, name),
          message: `is not a field of a message (${[...INPUT_KEYS].join(', ')})`,
        });
      }
    }
  }
  checkName(message.type, join(prefix, 'type'), MAX_NAME_LENGTH, issues);
  if (built || message.id !== undefined) checkName(message.id, join(prefix, 'id'), MAX_NAME_LENGTH, issues);
  if (built || message.key !== undefined) checkName(message.key, join(prefix, 'key'), NO_LIMIT, issues);
  const size: JsonSizeBound = { bytes: 0 };
  if (message.data === undefined) {
    issues.push({ path: join(prefix, 'data'), message: 'is missing (use null or {} for none)' });
  } else {
    checkJson(message.data, join(prefix, 'data'), issues, { size });
  }
  if (built || message.metadata !== undefined) {
    checkMetadata(message.metadata, join(prefix, 'metadata'), issues, size);
  }
  if (built || message.headers !== undefined) checkHeaders(message.headers, join(prefix, 'headers'), issues);
  if (built && !validDate(message.createdAt)) {
    issues.push({
      path: join(prefix, 'createdAt'),
      message: `must be a valid Date, got ${describeValue(message.createdAt)}`,
    });
  }
  if (message.deliverAt !== undefined && !validDate(message.deliverAt)) {
    issues.push({
      path: join(prefix, 'deliverAt'),
      message: `must be a valid Date, got ${describeValue(message.deliverAt)}`,
    });
  }
  const limit = defaultStoreLimits.maxEventBytes;
  // The bound summed by the walk spares serializing a message of ordinary size only to measure it.
  if (issues.length > before || size.bytes <= limit) return;
  const data = JSON.stringify(message.data);
  const metadata = message.metadata === undefined ? '' : JSON.stringify(message.metadata);
  const bytes = Buffer.byteLength(data) + Buffer.byteLength(metadata);
  if (bytes > limit) {
    issues.push({
      path: prefix || 'message',
      message: `is ${bytes} bytes serialized (data and metadata); the limit is ${limit}`,
    });
  }
}

function checkMetadata(value: unknown, path: string, issues: ValidationIssue[], size: JsonSizeBound): void {
  if (!isPlainObject(value)) {
    issues.push({ path, message: `must be a plain object, got ${describeValue(value)}` });
    return;
  }
  checkMetadataIds(value, path, issues);
  checkJson(value, path, issues, { size });
}

function checkHeaders(value: unknown, path: string, issues: ValidationIssue[]): void {
  if (!isPlainObject(value)) {
    issues.push({ path, message: `must be a plain object of strings, got ${describeValue(value)}` });
    return;
  }
  for (const [name, header] of Object.entries(value)) {
    if (!isStorableText(name)) {
      checkName(name, path, NO_LIMIT, issues);
      continue;
    }
    if (typeof header !== 'string') {
      issues.push({ path: `${path}.${name}`, message: `must be a string, got ${describeValue(header)}` });
    } else if (!isStorableText(header)) {
      checkJson(header, `${path}.${name}`, issues);
    }
  }
}

/**
 * Throws one `ValidationError` listing every problem of a batch of built
 * messages (as `publish` and `redeliver` take them), before anything is
 * written. Every transport calls it, so a message is refused alike everywhere.
 *
 * @example
 * assertMessages(messages); // in a transport's publish, before its first write
 */
/** Throws one `ValidationError` listing every problem of one built message, its paths under `path`. */
export function assertMessage(message: unknown, path: string): asserts message is Message {
  if (isCleanMessage(message, true)) return;
  const issues: ValidationIssue[] = [];
  checkMessage(message, path, true, issues);
  if (issues.length > 0) throw new ValidationError(issues);
}

export function assertMessages(messages: unknown, path = 'messages'): asserts messages is readonly Message[] {
  if (!Array.isArray(messages)) {
    throw new ValidationError({ path, message: `must be an array, got ${describeValue(messages)}` });
  }
  const issues: ValidationIssue[] = [];
  for (let i = 0; i < messages.length; i++) {
    // The path is built only for a message with a problem.
    if (!isCleanMessage(messages[i], true)) checkMessage(messages[i], `${path}[${i}]`, true, issues);
  }
  if (issues.length > 0) throw new ValidationError(issues);
}
