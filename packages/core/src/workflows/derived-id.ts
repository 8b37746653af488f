import { createHash } from 'node:crypto';

/**
 * A UUID (version 5 layout, RFC 9562) derived from its parts: the same parts
 * always give the same id. Workflows name what they record this way, so a
 * decision recorded again after an unknown outcome, or a timer fired twice,
 * carries the ids of the first time and collapses into it.
 *
 * @example
 * derivedId('order-1', 'message-7', 'input'); // '5d0c…' every time
 */
export function derivedId(...parts: readonly string[]): string {
  const hash = createHash('sha1');
  for (const part of parts) hash.update(`${part.length}:${part}`);
  const bytes = hash.digest().subarray(0, 16);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
