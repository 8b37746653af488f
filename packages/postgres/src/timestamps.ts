import pg from 'pg';

const fallback = pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ, 'text') as (text: string) => Date | string;

const digit = (text: string, at: number) => text.charCodeAt(at) - 48;
const two = (text: string, at: number) => digit(text, at) * 10 + digit(text, at + 1);
const isDigits = (text: string, at: number, count: number) => {
  for (let i = at; i < at + count; i++) {
    const code = text.charCodeAt(i);
    if (code < 48 || code > 57) return false;
  }
  return true;
};

/**
 * Reads a `timestamptz` in PostgreSQL's default ISO output
 * (`2026-11-26 05:28:58.123456+00`, `…+05:30`) as epoch milliseconds, without
 * a regular expression or a Date per row: the store reads many of them.
 * Anything else (another DateStyle, `infinity`, BC dates, years past 9999)
 * goes to node-postgres's own parser.
 */
export function parseTimestamptz(text: string): number {
  const length = text.length;
  if (length >= 22 && text[4] === '-' && text[10] === ' ' && text[13] === ':' && text[19] !== ':') {
    let at = 19;
    let millis = 0;
    if (text[at] === '.') {
      let scale = 100;
      at += 1;
      while (at < length && text.charCodeAt(at) >= 48 && text.charCodeAt(at) <= 57) {
        millis += digit(text, at) * scale;
        scale /= 10;
        at += 1;
      }
      millis = Math.floor(millis);
    }
    const sign = text[at] === '+' ? 1 : text[at] === '-' ? -1 : 0;
    const rest = length - at;
    const offsetShape =
      (rest === 3 ||
        (rest === 6 && text[at + 3] === ':') ||
        (rest === 9 && text[at + 3] === ':' && text[at + 6] === ':')) &&
      isDigits(text, at + 1, 2) &&
      (rest < 6 || isDigits(text, at + 4, 2)) &&
      (rest < 9 || isDigits(text, at + 7, 2));
    // Date.UTC reads years 0–99 as 1900–1999: leave early years to the fallback.
    if (sign !== 0 && offsetShape && text[0] !== '0') {
      const offsetMinutes = two(text, at + 1) * 60 + (rest >= 6 ? two(text, at + 4) : 0);
      const offsetSeconds = rest === 9 ? two(text, at + 7) : 0;
      const utc = Date.UTC(
        digit(text, 0) * 1000 + digit(text, 1) * 100 + two(text, 2),
        two(text, 5) - 1,
        two(text, 8),
        two(text, 11),
        two(text, 14),
        two(text, 17),
        millis,
      );
      if (!Number.isNaN(utc)) return utc - sign * (offsetMinutes * 60 + offsetSeconds) * 1000;
    }
  }
  const parsed = fallback(text);
  if (parsed instanceof Date) return parsed.getTime();
  if (text === 'infinity') return Number.POSITIVE_INFINITY;
  return text === '-infinity' ? Number.NEGATIVE_INFINITY : Number.NaN;
}
