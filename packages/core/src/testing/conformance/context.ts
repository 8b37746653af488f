import assert from 'node:assert/strict';
import type { EventStore, EventToAppend, RecordedEvent } from '../../store/types.ts';
import type { StoreLimits } from '../../store/validation.ts';

/** How a conformance run gets stores from the adapter under test. */
/**
 * Returns a store. It may be fresh or shared between cases: every case uses
 * stream ids and categories of its own and reads the log from the head it
 * saw at its start.
 */
export type EventStoreFactory = (options?: { limits?: Partial<StoreLimits> }) => Promise<EventStore> | EventStore;

export interface CaseContext {
  store: EventStore;
  createStore: EventStoreFactory;
  /** A stream id unique to this run; its category is unique too. */
  streamId(label?: string): string;
  /** A category unique to this run. */
  category(label?: string): string;
}

export interface ConformanceCase {
  name: string;
  run(context: CaseContext): Promise<void>;
}

let counter = 0;
const runId = Math.random().toString(36).slice(2, 8);

export function uniqueCategory(label = 'c'): string {
  counter += 1;
  return `${label}${runId}x${counter}`;
}

export const event = (type: string, data: unknown = {}, extra: Partial<EventToAppend> = {}): EventToAppend => ({
  type,
  data,
  ...extra,
});

/** Reads every event after `after` into an array. */
export async function collectAll(
  store: EventStore,
  options: Parameters<EventStore['readAll']>[0] = {},
): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  for await (const e of store.readAll(options)) out.push(e);
  return out;
}

/** Asserts `promise` rejects with a Factline error of `code`; returns it. */
export async function rejectsWithCode<T = Error>(promise: Promise<unknown>, code: string): Promise<T> {
  try {
    await promise;
  } catch (error) {
    assert.equal((error as { code?: unknown }).code, code, `expected code ${code}, got ${String(error)}`);
    return error as T;
  }
  assert.fail(`expected a rejection with code ${code}, but it resolved`);
}

/** Asserts nothing was written: head position and the stream are as before. */
export async function assertUnchanged(store: EventStore, head: number, streamId?: string, version = 0) {
  assert.equal(await store.headPosition(), head, 'the log head moved: something was written');
  if (streamId !== undefined) {
    const read = await store.readStream(streamId).catch(() => undefined);
    if (read) assert.equal(read.version, version, `stream ${streamId} changed version`);
  }
}
