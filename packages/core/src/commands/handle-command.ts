import { CommandRetriesExhaustedError, isConcurrencyError } from '../errors/index.ts';
import { checkHandleCommandOptions } from '../options/core-options.ts';
import type { Event, EventMetadata, EventStore, ExpectedVersion, RecordedOf } from '../store/types.ts';
import { checkExpectedVersion } from '../store/validation.ts';
import { traceCommand } from '../tracing/store-spans.ts';
import { type Decider, foldEvents } from './decider.ts';
import { continueState, type Loaded, loadFromSnapshot, loadState } from './load-state.ts';
import { type CommandSnapshots, resolveSnapshots } from './snapshot-options.ts';
import { snapshotAfterCommit } from './snapshot-save.ts';

export interface HandleCommandOptions<State = unknown, E extends Event = Event> {
  /**
   * Append only if the stream is still at this version (e.g. from an HTTP
   * `If-Match`). A conflict is then the caller's to handle: no retry.
   */
  expectedVersion?: ExpectedVersion;
  /** Attempts before giving up on conflicts. Default 10. */
  maxAttempts?: number;
  /** First retry delay ceiling in ms (full jitter, doubling), 0 to 2147483647. Default 2. */
  initialBackoffMs?: number;
  /** Largest retry delay ceiling in ms, 0 to 2147483647. Default 100. */
  maxBackoffMs?: number;
  /** Merged into every new event's metadata (correlation and causation ids, user keys). */
  metadata?: EventMetadata;
  /**
   * Start from the stream's latest snapshot and read only the events after
   * it; write one after the append when the policy says so. Default: no
   * snapshots. See {@link CommandSnapshots}. Typed by the decider's state:
   * options kept in a variable need it, `HandleCommandOptions<Cart, CartEvent>`
   * (the bare `HandleCommandOptions` holds no snapshots, so it fits any decider).
   */
  snapshots?: unknown extends State ? never : CommandSnapshots<State, E>;
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
  /**
   * Settles once the snapshot this command started (if any) is written:
   * `true` when one was stored, `false` when none was due, a newer one was
   * kept, or the save failed (reported to `snapshots.onError`). Never
   * rejects; the result does not wait for it. Await it in tests.
   */
  snapshotSaved: Promise<boolean>;
}

const noSnapshot = Promise.resolve(false);

type CheckedOptions<State, E extends Event> = Omit<HandleCommandOptions, 'snapshots'> & {
  snapshots?: CommandSnapshots<State, E>;
};

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Loads a stream, decides, and appends with the version it loaded. On a
 * `ConcurrencyError` it reloads and decides again, with jittered exponential
 * backoff, up to `maxAttempts`; domain errors thrown by `decide` go straight
 * to the caller. With `snapshots`, the first attempt starts from the
 * stream's latest snapshot and reads only the events after it; a snapshot is
 * written after the append committed, never holding up the result.
 *
 * @example
 * const { state, version } = await handleCommand(store, 'order-42', { type: 'PlaceOrder', items }, orderDecider);
 * await handleCommand(store, 'order-42', { type: 'Ship' }, orderDecider, {
 *   snapshots: { store: snapshots, version: 1, every: 100, onError: (error) => log.warn(error) },
 * });
 */
export async function handleCommand<State, Command, E extends Event>(
  store: EventStore,
  streamId: string,
  command: Command,
  decider: Decider<State, Command, E>,
  given?: HandleCommandOptions<NoInfer<State>, NoInfer<E>> | HandleCommandOptions,
): Promise<HandleCommandResult<State, E>> {
  // Traced as a `command` span when a tracer is registered.
  return traceCommand(streamId, given?.metadata, () => decideAndAppend(store, streamId, command, decider, given));
}

/**
 * The events after `version` up to `to` (this command's last), when they are
 * all there: others' events appended between this command's read and its
 * append, then its own. `undefined` when some are missing (truncated, the
 * stream re-created) or the read failed: the append is committed either way.
 */
async function eventsSince<E extends Event>(
  store: EventStore,
  streamId: string,
  version: number,
  to: number,
): Promise<E[] | undefined> {
  try {
    const { events } = await store.readStream<E>(streamId, { from: version + 1, to });
    const contiguous = events.length === to - version && events[0]?.streamVersion === version + 1;
    return contiguous ? (events as unknown as E[]) : undefined;
  } catch {
    return undefined;
  }
}

async function decideAndAppend<State, Command, E extends Event>(
  store: EventStore,
  streamId: string,
  command: Command,
  decider: Decider<State, Command, E>,
  given?: HandleCommandOptions<NoInfer<State>, NoInfer<E>> | HandleCommandOptions,
): Promise<HandleCommandResult<State, E>> {
  // Either form of the options, as the decider's state types them.
  const options: CheckedOptions<State, E> = checkHandleCommandOptions(given) ?? {};
  const snapshots = options.snapshots && resolveSnapshots(options.snapshots, decider.initialState);
  const fixedVersion = options.expectedVersion;
  const maxAttempts = fixedVersion === undefined ? (options.maxAttempts ?? 10) : 1;
  const initial = options.initialBackoffMs ?? 2;
  const max = options.maxBackoffMs ?? 100;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;

  // What the last attempt read: a retry reads only the events after it.
  let known: Loaded<State> | undefined;
  // The stream version of the snapshot the first attempt started from.
  let base = 0;
  for (let attempt = 1; ; attempt++) {
    const continued = known && (await continueState(store, streamId, decider, known));
    if (continued) known = continued;
    else if (snapshots) {
      // The first attempt, or a retry on a stream that no longer continues what it read: the
      // snapshot again (events it covers may have been truncated away since).
      const start = await loadFromSnapshot(store, streamId, decider, snapshots);
      base = start.base;
      known = start;
    } else known = await loadState(store, streamId, decider, undefined);
    const { state, version } = known;
    // A caller's version (an If-Match) is checked before `decide`: a rule run on a state the caller did not see
    // would answer for it, and a version not reached yet may be reached by others' events before the append.
    if (fixedVersion !== undefined) checkExpectedVersion(streamId, fixedVersion, version);
    const decided = decider.decide(command, state);
    const newEvents = Array.isArray(decided) ? (decided as readonly E[]) : [decided as E];
    if (newEvents.length === 0) {
      return { state, newEvents: [], version, position: 0, attempts: attempt, snapshotSaved: noSnapshot };
    }
    const toAppend = options.metadata
      ? newEvents.map((e) => ({ ...e, metadata: { ...options.metadata, ...e.metadata } }))
      : newEvents;
    try {
      const result = await store.append(streamId, toAppend, { expectedVersion: fixedVersion ?? version });
      // With `'any'` or `'stream-exists'`, others' events may have landed between the read and the append.
      const landed =
        result.version === version + newEvents.length
          ? (result.events as unknown as E[])
          : await eventsSince<E>(store, streamId, version, result.version);
      const next = foldEvents(decider, landed ?? (result.events as unknown as E[]), state);
      // The store recorded exactly what `decide` returned, so the events keep the decider's union.
      const stored = result.events as RecordedOf<E>[];
      const committed = { streamId, state: next, version: result.version, newEvents: stored, base };
      return {
        state: next,
        newEvents: stored,
        version: result.version,
        position: result.position,
        attempts: attempt,
        // A state that may miss others' events is never saved.
        snapshotSaved: snapshots && landed ? snapshotAfterCommit(snapshots, committed) : noSnapshot,
      };
    } catch (error) {
      if (!isConcurrencyError(error) || fixedVersion !== undefined) throw error;
      if (attempt >= maxAttempts) throw new CommandRetriesExhaustedError(streamId, attempt, error);
      await sleep(random() * Math.min(max, initial * 2 ** (attempt - 1)));
    }
  }
}
