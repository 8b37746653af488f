import { randomFillSync } from 'node:crypto';

// Random bytes are drawn 4 KiB at a time: one syscall per 256 ids instead of one per id,
// which was a measurable share of a single-event append.
const pool = new Uint8Array(4096);
let poolOffset = pool.length;
let lastMs = -1;
let counter = 0;
const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter that
 * keeps ids from one process strictly increasing within a millisecond
 * (method 1 of the RFC), then 62 random bits.
 *
 * @example
 * const id = uuidv7(); // '019ac1e2-7c3a-7000-8f1e-5b2d9c0a4e71'
 */
export function uuidv7(now: number = Date.now()): string {
  if (poolOffset + 10 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const at = poolOffset;
  poolOffset += 10;
  let ms = now;
  if (ms > lastMs) {
    lastMs = ms;
    counter = ((pool[at + 0] as number) & 0x07) * 256 + (pool[at + 1] as number); // random start, room to count up
  } else {
    ms = lastMs; // clock went back or same millisecond: keep order
    counter += 1;
    if (counter > 0xfff) {
      lastMs += 1; // counter exhausted: borrow the next millisecond
      ms = lastMs;
      counter = 0;
    }
  }
  const high = Math.floor(ms / 0x1000000);
  const low = ms % 0x1000000;
  return (
    hex[(high >>> 16) & 0xff] +
    (hex[(high >>> 8) & 0xff] as string) +
    hex[high & 0xff] +
    hex[(low >>> 16) & 0xff] +
    '-' +
    hex[(low >>> 8) & 0xff] +
    hex[low & 0xff] +
    '-' +
    hex[0x70 | (counter >>> 8)] +
    hex[counter & 0xff] +
    '-' +
    hex[0x80 | ((pool[at + 2] as number) & 0x3f)] +
    hex[pool[at + 3] as number] +
    '-' +
    hex[pool[at + 4] as number] +
    hex[pool[at + 5] as number] +
    hex[pool[at + 6] as number] +
    hex[pool[at + 7] as number] +
    hex[pool[at + 8] as number] +
    hex[pool[at + 9] as number]
  );
}
