import { CommandRetriesExhaustedError, isConcurrencyError } from '../errors/index.ts';
import { checkHandleCommandOptions } from '../options/core-options.ts';
import type { Event, EventMetadata, EventStore, ExpectedVersion, RecordedOf } from '../store/types.ts';
import { traceCommand } from '../tracing/store-spans.ts';
import { type Decider, foldEvents } from './decider.ts';

export interface HandleCommandOptions {
  /**
   * Append only if the stream is still at this version (e.g. from an HTTP
   * `If-Match`). A conflict is then the caller's to handle: no retry.
   */
  expectedVersion?: ExpectedVersion;
  /** Attempts before giving up on conflicts. Default 10. */
  maxAttempts?: number;
  /** First retry delay ceiling in ms (full jitter, doubling). Default 2. */
  initialBackoffMs?: number;
  /** Largest retry delay ceiling in ms. Default 100. */
  maxBackoffMs?: number;
  /** Merged into every new event's metadata (correlation and causation ids, user keys). */
  metadata?: EventMetadata;
  /** Injected for tests; defaults to a timer. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface HandleCommandResult<State, E extends Event = Event> {
  /** State after the new events. */
  state: State;
  /** The stored new events; empty when `decide` returned none. */
  newEvents: RecordedOf<E>[];
  /** The stream's version after the command. */
  version: number;
  /** Position of the last new event, or 0 when nothing was appended. */
  position: number;
  /** How many times the command was decided (1 without conflicts). */
  attempts: number;
}

interface Loaded<State> {
  state: State;
  version: number;
  /** The id of the event at `version`, to recognise the same stream on the next read. */
  lastId: string | undefined;
}

/**
 * Reads the stream and folds it. Given what an earlier attempt loaded, reads
 * only from that version on: when the event there is still the one folded
 * (same id, so the stream was not deleted and re-created meanwhile), only the
 * newer events are folded onto the earlier state; otherwise it reads it all.
 */
async function load<State, Command, E extends Event>(
  store: EventStore,
  streamId: string,
  decider: Decider<State, Command, E>,
  known: Loaded<State> | undefined,
): Promise<Loaded<State>> {
  if (known && known.version > 0 && known.lastId !== undefined) {
    const tail = await store.readStream<E>(streamId, { from: known.version });
    const first = tail.events[0];
    if (first?.streamVersion === known.version && first.id === known.lastId && tail.version >= known.version) {
      return {
        state: foldEvents(decider, tail.events.slice(1) as unknown as E[], known.state),
        version: tail.version,
        lastId: tail.events[tail.events.length - 1]?.id,
      };
    }
  }
  const { version, events } = await store.readStream(streamId);
  return { state: foldEvents(decider, events as unknown as E[]), version, lastId: events[events.length - 1]?.id };
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Loads a stream, decides, and appends with the version it loaded. On a
 * `ConcurrencyError` it reloads and decides again, with jittered exponential
 * backoff, up to `maxAttempts`; domain errors thrown by `decide` go straight
 * to the caller.
 *
 * @example
 * const { state, version } = await handleCommand(store, 'order-42', { type: 'PlaceOrder', items }, orderDecider);
 */
export async function handleCommand<State, Command, E extends Event>(
  store: EventStore,
  streamId: string,
  command: Command,
  decider: Decider<State, Command, E>,
  given?: HandleCommandOptions,
): Promise<HandleCommandResult<State, E>> {
  // Traced as a `command` span when a tracer is registered.
  return traceCommand(streamId, given?.metadata, () => decideAndAppend(store, streamId, command, decider, given));
}

async function decideAndAppend<State, Command, E extends Event>(
  store: EventStore,
  streamId: string,
  command: Command,
  decider: Decider<State, Command, E>,
  given?: HandleCommandOptions,
): Promise<HandleCommandResult<State, E>> {
  const options = checkHandleCommandOptions(given) ?? {};
  const fixedVersion = options.expectedVersion;
  const maxAttempts = fixedVersion === undefined ? (options.maxAttempts ?? 10) : 1;
  const initial = options.initialBackoffMs ?? 2;
  const max = options.maxBackoffMs ?? 100;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;

  // What the last attempt read: a retry reads only the events after it.
  let known: Loaded<State> | undefined;
  for (let attempt = 1; ; attempt++) {
    known = await load(store, streamId, decider, known);
    const { state, version } = known;
    const decided = decider.decide(command, state);
    const newEvents = Array.isArray(decided) ? (decided as readonly E[]) : [decided as E];
    if (newEvents.length === 0) return { state, newEvents: [], version, position: 0, attempts: attempt };
    const toAppend = options.metadata
      ? newEvents.map((e) => ({ ...e, metadata: { ...options.metadata, ...e.metadata } }))
      : newEvents;
    try {
      const result = await store.append(streamId, toAppend, { expectedVersion: fixedVersion ?? version });
      return {
        state: foldEvents(decider, result.events as unknown as E[], state),
        // The store recorded exactly what `decide` returned, so the events keep the decider's union.
        newEvents: result.events as RecordedOf<E>[],
        version: result.version,
        position: result.position,
        attempts: attempt,
      };
    } catch (error) {
      if (!isConcurrencyError(error) || fixedVersion !== undefined) throw error;
      if (attempt >= maxAttempts) throw new CommandRetriesExhaustedError(streamId, attempt, error);
      await sleep(random() * Math.min(max, initial * 2 ** (attempt - 1)));
    }
  }
}
