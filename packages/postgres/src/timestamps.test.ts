import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTimestamptz } from './timestamps.ts';

test('parses PostgreSQL ISO timestamptz output to epoch milliseconds', () => {
  const cases: [string, string][] = [
    ['2026-11-26 05:28:58+00', '2026-11-26T05:28:58.000Z'],
    ['2026-11-26 05:28:58.1+00', '2026-11-26T05:28:58.100Z'],
    ['2026-11-26 05:28:58.123+00', '2026-11-26T05:28:58.123Z'],
    ['2026-11-26 05:28:58.123999+00', '2026-11-26T05:28:58.123Z'],
    ['2026-11-26 05:28:58.5-03', '2026-11-26T08:28:58.500Z'],
    ['2026-11-26 05:28:58+05:30', '2026-11-25T23:58:58.000Z'],
    ['1900-01-01 00:00:00+00:09:21', '1899-12-31T23:50:39.000Z'],
    ['2024-02-29 23:59:59.999+00', '2024-02-29T23:59:59.999Z'],
  ];
  for (const [text, iso] of cases) assert.equal(new Date(parseTimestamptz(text)).toISOString(), iso, text);
});

test('other forms fall back to node-postgres', () => {
  assert.equal(parseTimestamptz('infinity'), Number.POSITIVE_INFINITY);
  assert.equal(new Date(parseTimestamptz('0044-03-15 12:00:00+00 BC')).getUTCFullYear(), -43);
  assert.equal(new Date(parseTimestamptz('0099-06-01 00:00:00+00')).getUTCFullYear(), 99);
  assert.equal(new Date(parseTimestamptz('2026-11-26 05:28:58+0x:00')).getTime(), Number.NaN);
});
