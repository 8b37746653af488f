import { isStorableText, storableFailureText } from '../store/json-checks.ts';
import { type DeadLetter, storableDeadLetter } from './consumer-ports.ts';
import { messageFromJson, messageToJson } from './message.ts';

// A dead letter as the SQL and Redis stores keep it: one JSON text. Factline's publish refuses a NUL (U+0000)
// and a lone surrogate in a message, but a message written into a broker by another program can hold one,
// and PostgreSQL reads no JSON holding a NUL (a lone surrogate's escape neither). Such a message is kept
// twice: `message` as it is shown (and indexed), with those as U+2400 and U+FFFD, and `messageJson`, its exact
// JSON text as a string (its escapes escaped again, so nothing in the record's JSON is a NUL): the record
// reads back with the message as it was received, and a redrive sends that.

/** Whether a string or key anywhere in `value` (parsed JSON) is text no store keeps as it is (`isStorableText`). */
function holdsUnstorableText(value: unknown): boolean {
  if (typeof value === 'string') return !isStorableText(value);
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return value.some(holdsUnstorableText);
  for (const [key, child] of Object.entries(value)) {
    if (!isStorableText(key) || holdsUnstorableText(child)) return true;
  }
  return false;
}

/** `value` (parsed JSON) with its strings and keys as `storableFailureText` has them: a NUL as U+2400 (␀). */
function shownJson(value: unknown): unknown {
  if (typeof value === 'string') return storableFailureText(value);
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(shownJson);
  // fromEntries defines each key (an own `__proto__` stays a key); two keys shown alike keep the last.
  return Object.fromEntries(Object.entries(value).map(([key, child]) => [storableFailureText(key), shownJson(child)]));
}

/**
 * The JSON text an SQL or Redis dead-letter store keeps for a record: its
 * failure's text as `storableDeadLetter` has it, its message unchanged. A
 * message holding a NUL or a lone surrogate (written by another program) is
 * kept as `message` with those as U+2400 and U+FFFD, beside `messageJson`,
 * its exact JSON text, which `deadLetterFromJson` reads it back from.
 *
 * @example
 * insert.run({ id: record.id, record: deadLetterToJson(record) });
 */
export function deadLetterToJson(record: DeadLetter): string {
  const text = messageToJson(record.message);
  const message: unknown = JSON.parse(text);
  const stored = storableDeadLetter(record);
  if (!holdsUnstorableText(message)) return JSON.stringify({ ...stored, message });
  return JSON.stringify({ ...stored, message: shownJson(message), messageJson: text });
}

/**
 * A dead letter back from its stored JSON, with its dates as Dates again and
 * its message as it was received (from `messageJson` when present).
 *
 * @example
 * const record = deadLetterFromJson(row.record);
 */
export function deadLetterFromJson(text: string): DeadLetter {
  const { messageJson, ...parsed } = JSON.parse(text) as Omit<DeadLetter, 'message'> & {
    message: unknown;
    messageJson?: unknown;
  };
  return {
    ...parsed,
    message: messageFromJson(typeof messageJson === 'string' ? messageJson : JSON.stringify(parsed.message)),
    firstFailureAt: new Date(parsed.firstFailureAt),
    lastFailureAt: new Date(parsed.lastFailureAt),
    deadLetteredAt: new Date(parsed.deadLetteredAt),
    redrives: parsed.redrives.map((at) => new Date(at)),
  };
}
