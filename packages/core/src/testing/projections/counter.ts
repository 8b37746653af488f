import assert from 'node:assert/strict';
import type { ProjectionRunner } from '../../projections/runner.ts';
import type { Projection, ProjectionStatus } from '../../projections/types.ts';
import type { AppendResult, EventStore, RecordedEvent } from '../../store/types.ts';
import { collectAll } from '../conformance/context.ts';
import type { CaseNames, CounterModel, CounterSnapshot } from './context.ts';

// Helpers the projection cases share: a counter projection on the adapter's
// model, appends, and the model a fresh count of the log expects.

export interface CounterBehaviour {
  /**
   * Events the handler fails on: it applies the batch's events before the
   * first such event, then throws (so a rollback must undo those writes).
   */
  failsOn?: (event: RecordedEvent) => boolean;
  /** Text the failure's message ends with (after the position). Default: none. */
  failureText?: string;
  /** Called with every batch before it is applied, inside the transaction. */
  onBatch?: (events: readonly RecordedEvent[]) => void;
  onFailure?: 'stop' | 'park';
  /** The projection's version (default: none given, i.e. 1). */
  version?: number;
  /** The name the model's rows are kept under. Default: the projection's name. */
  model?: string;
  /** The event types handled. Default: the case's `type`. */
  handles?: string[];
  /** The projection's `retire` hook (called after it went live, with the version before). */
  retire?: (previousVersion: number) => void;
}

export const FAILURE = 'counter refused the event';

export function counterProjection<Tx>(
  model: CounterModel<Tx>,
  names: CaseNames,
  behaviour: CounterBehaviour = {},
): Projection<Tx> {
  const name = behaviour.model ?? names.projection;
  const retire = behaviour.retire;
  return {
    name: names.projection,
    handles: behaviour.handles ?? [names.type],
    init: (tx) => model.init(tx),
    reset: (tx) => model.reset(tx, name),
    handle: (events, tx) => {
      behaviour.onBatch?.(events);
      const failsOn = behaviour.failsOn;
      const bad = failsOn ? events.findIndex((e) => failsOn(e)) : -1;
      if (bad === -1) return model.apply(tx, events, name);
      const error = new Error(
        `${FAILURE} at position ${(events[bad] as RecordedEvent).position}${behaviour.failureText ?? ''}`,
      );
      const before = events.slice(0, bad);
      const pending = before.length > 0 ? model.apply(tx, before, name) : undefined;
      if (pending && typeof (pending as Promise<void>).then === 'function') {
        return (pending as Promise<void>).then(() => {
          throw error;
        });
      }
      throw error;
    },
    ...(behaviour.onFailure ? { onFailure: behaviour.onFailure } : {}),
    ...(behaviour.version !== undefined ? { version: behaviour.version } : {}),
    ...(retire ? { retire: (_tx: Tx, previous: number) => retire(previous) } : {}),
  };
}

/** Appends `count` events of `type`, `perAppend` at a time, round-robin over `streams` streams. */
export async function appendEvents(
  store: EventStore,
  names: CaseNames,
  count: number,
  options: { streams?: number; perAppend?: number; type?: string; data?: (i: number) => unknown } = {},
): Promise<AppendResult[]> {
  const streams = options.streams ?? 3;
  const perAppend = options.perAppend ?? 1;
  const results: AppendResult[] = [];
  for (let i = 0, append = 0; i < count; append++) {
    const size = Math.min(perAppend, count - i);
    const events = Array.from({ length: size }, (_, j) => ({
      type: options.type ?? names.type,
      data: options.data ? options.data(i + j) : { i: i + j },
    }));
    results.push(await store.append(`${names.category}-${append % streams}`, events));
    i += size;
  }
  return results;
}

export const lastPosition = (results: readonly AppendResult[]): number =>
  results.reduce((max, r) => Math.max(max, r.position), 0);

/**
 * What the model must hold if every event of `type` in the log was applied
 * exactly once, in order (only those `keep` accepts, when given).
 */
export async function countLog(
  store: EventStore,
  type: string | string[],
  keep: (position: number) => boolean = () => true,
): Promise<CounterSnapshot> {
  const types = typeof type === 'string' ? [type] : type;
  const events = (await collectAll(store, { types })).filter((e) => keep(e.position));
  const perStream: Record<string, number> = {};
  for (const e of events) perStream[e.streamId] = (perStream[e.streamId] ?? 0) + 1;
  return { perStream, applied: events.map((e) => e.position) };
}

function duplicates(positions: readonly number[]): number[] {
  const seen = new Set<number>();
  const twice = new Set<number>();
  for (const p of positions) (seen.has(p) ? twice : seen).add(p);
  return [...twice];
}

/** Asserts the model holds exactly `expected.applied` (in order, no duplicate) and its per-stream counts. */
export function assertModel(actual: CounterSnapshot, expected: CounterSnapshot, when = ''): void {
  const twice = duplicates(actual.applied);
  assert.deepEqual(twice, [], `${when}positions applied more than once: ${twice.slice(0, 10).join(', ')}`);
  const missing = expected.applied.filter((p) => !actual.applied.includes(p));
  assert.deepEqual(missing, [], `${when}positions never applied: ${missing.slice(0, 10).join(', ')}`);
  assert.deepEqual(actual.applied, expected.applied, `${when}applied positions differ (order or extra events)`);
  assert.deepEqual(actual.perStream, expected.perStream, `${when}per-stream counters differ`);
}

/** Polls `check` until it holds; fails after `timeoutMs`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: () => string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export const describeStatus = (status: ProjectionStatus) =>
  JSON.stringify({ ...status, lastError: status.lastError?.message });

/** Waits until the projection is idle in the `running` state. */
export const untilRunning = (runner: ProjectionRunner, name: string) =>
  eventually(
    () => runner.status(name).state === 'running',
    () => `'${name}' to be running (${describeStatus(runner.status(name))})`,
  );

export const noSleep = async () => {};
