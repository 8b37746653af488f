import type { ExpectedVersion, RecordedEvent } from '@factline/core';
import type { PreparedAppend, StoredEvent, StreamState } from '@factline/core/adapter';
import pg from 'pg';
import { parseTimestamptz } from '../timestamps.ts';
import { ExpectedCode } from './schema.ts';

/** Positions and versions are bigint columns; they stay below 2^53, so they come back as numbers. */
const parseBigint = (value: string) => Number(value);
/** `bigint[]` of plain numbers, as the append function returns (`{1,5,120}`). */
const INT8_ARRAY = 1016;
const parseBigintArray = (value: string) => value.slice(1, -1).split(',').map(Number);
/** `data` and `metadata` come back as the JSON text that was stored; the store parses it once. */
const keepText = (value: string) => value;

/** The column types the store's queries ask for (the pool's own parsers are left alone). */
export const typeParsers = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8) return parseBigint;
    if (oid === pg.types.builtins.JSON) return keepText;
    if (oid === pg.types.builtins.TIMESTAMPTZ) return parseTimestamptz;
    if (oid === INT8_ARRAY) return parseBigintArray;
    return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** A stream's state as the stream-state statement returns it (core's `StreamState`, `recorded` always given). */
export interface StreamStateRow extends StreamState {
  tombstoned: boolean;
  recorded: boolean;
}

/** What the append functions report for one append: an `Outcome`, the stream's version after it, its last position. */
export interface AppendOutcomeRow {
  outcome: number;
  version_after: number;
  last_pos: number | null;
}

/**
 * The event whose `eventRowColumns` start at `row[at]`, as `toRecordedEvent`
 * makes it (fresh objects, same shape).
 */
export function eventOfRow(row: readonly unknown[], at: number, streamId: string): RecordedEvent {
  const metadata = row[at + 6] as string | null;
  return {
    id: row[at + 1] as string,
    type: row[at + 3] as string,
    data: JSON.parse(row[at + 5] as string),
    metadata: metadata === null ? {} : JSON.parse(metadata),
    streamId,
    streamVersion: row[at + 2] as number,
    position: row[at] as number,
    recordedAt: new Date(row[at + 7] as number),
    schemaVersion: (row[at + 4] as number | null) ?? 1,
  };
}

let isoMs = Number.NaN;
let isoText = '';
/**
 * `recordedAt` as the text the statements take. Formatting a date costs about
 * as much as the rest of an append's own JavaScript, and appends made in the
 * same millisecond share it, so the last one is kept.
 */
export function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
}

/** `expectedVersion` as the append functions take it (see `ExpectedCode`). */
export function expectedCode(expected: ExpectedVersion): number {
  if (typeof expected === 'number') return expected;
  if (expected === 'no-stream') return 0;
  if (expected === 'stream-exists') return ExpectedCode.streamExists;
  return ExpectedCode.any;
}

/** The batch append function's parameters: one array per column, events flattened in append order. */
export function appendParameters(batch: readonly PreparedAppend[], recordedAt: number): unknown[] {
  const streams: string[] = [];
  const categories: string[] = [];
  const expected: number[] = [];
  const counts: number[] = [];
  const ids: string[] = [];
  const types: string[] = [];
  const schemaVersions: number[] = [];
  const data: string[] = [];
  const metadata: string[] = [];
  for (const append of batch) {
    streams.push(append.streamId);
    categories.push(append.category);
    expected.push(expectedCode(append.expectedVersion));
    counts.push(append.events.length);
    for (const event of append.events) {
      ids.push(event.id);
      types.push(event.type);
      schemaVersions.push(event.schemaVersion);
      data.push(event.data);
      metadata.push(event.metadata);
    }
  }
  const at = isoTime(recordedAt);
  return [streams, categories, expected, counts, ids, types, schemaVersions, data, metadata, at];
}

/** `append_event`'s parameters for an append of one event. */
export function oneEventParameters(append: PreparedAppend, recordedAt: string): (string | number)[] {
  const event = append.events[0] as PreparedAppend['events'][number];
  return [
    append.streamId,
    append.category,
    expectedCode(append.expectedVersion),
    event.id,
    event.type,
    event.schemaVersion,
    event.data,
    event.metadata,
    recordedAt,
  ];
}

/** The events an append stored, from its outcome (its positions are consecutive under the append lock). */
export function storedEvents(append: PreparedAppend, row: AppendOutcomeRow, recordedAt: number): StoredEvent[] {
  const last = row.last_pos as number;
  const count = append.events.length;
  return append.events.map((event, i) => ({
    ...event,
    streamId: append.streamId,
    streamVersion: row.version_after - count + i + 1,
    position: last - count + i + 1,
    recordedAt,
  }));
}
