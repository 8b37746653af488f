import { StorageError } from '../errors/index.ts';
import type { Snapshot } from '../snapshots/types.ts';
import type { Event, EventStore, ReadStreamResult } from '../store/types.ts';
import { type Decider, foldEvents } from './decider.ts';
import type { ResolvedSnapshots } from './snapshot-options.ts';

/** A stream folded into state. */
export interface Loaded<State> {
  state: State;
  version: number;
  /** The id of the event at `version`, to recognise the same stream on the next read. */
  lastId: string | undefined;
}

type Evolving<State, E extends Event> = Pick<Decider<State, unknown, E>, 'initialState' | 'evolve'>;

/**
 * Given what an earlier attempt loaded, reads the stream from that version on
 * and folds only the newer events onto the earlier state, when the stream
 * still continues it: the event at that version is still the one folded (same
 * id, so the stream was not deleted and re-created meanwhile), or it was
 * truncated away and the next event is the first read (nothing between is
 * missed; the earlier state is then the only record of what it built, as a
 * snapshot is). Otherwise `undefined`: the caller loads afresh.
 */
export async function continueState<State, E extends Event>(
  store: EventStore,
  streamId: string,
  decider: Evolving<State, E>,
  known: Loaded<State>,
): Promise<Loaded<State> | undefined> {
  if (known.version === 0 || known.lastId === undefined) return undefined;
  const tail = await store.readStream<E>(streamId, { from: known.version });
  if (tail.version < known.version) return undefined;
  const first = tail.events[0];
  let newer: readonly E[];
  if (first?.streamVersion === known.version) {
    if (first.id !== known.lastId) return undefined;
    newer = tail.events.slice(1) as unknown as E[];
  } else if (first?.streamVersion === known.version + 1) newer = tail.events as unknown as E[];
  else return undefined;
  return {
    state: foldEvents(decider, newer, known.state),
    version: tail.version,
    lastId: tail.events[tail.events.length - 1]?.id ?? known.lastId,
  };
}

/**
 * Reads the stream and folds it; given what an earlier attempt loaded, only
 * the newer events when the stream continues it (`continueState`).
 */
export async function loadState<State, E extends Event>(
  store: EventStore,
  streamId: string,
  decider: Evolving<State, E>,
  known: Loaded<State> | undefined,
): Promise<Loaded<State>> {
  const continued = known && (await continueState(store, streamId, decider, known));
  if (continued) return continued;
  const { version, events } = await store.readStream(streamId);
  return { state: foldEvents(decider, events as unknown as E[]), version, lastId: events[events.length - 1]?.id };
}

/** What the first attempt of a command with snapshots loaded. */
export interface SnapshotStart<State> extends Loaded<State> {
  /** The stream version of the snapshot the state was built on; 0 when none was used. */
  base: number;
}

/**
 * Whether `tail` (the stream read from the snapshot's version on) continues
 * the stream the snapshot was taken of. A stream now shorter than the
 * snapshot, or another event at its version, was deleted and written again.
 * When the event at its version was truncated away, the snapshot cannot be
 * checked and is trusted: it is then the only record of what those events built.
 * When events after it were truncated away too (the first left is past the
 * one after it), folding on it would miss them: it is not continued, and the
 * gap is told to `report`.
 */
export function continues(snapshot: Snapshot, tail: ReadStreamResult, report: (error: unknown) => void): boolean {
  if (tail.version < snapshot.version) return false;
  const first = tail.events[0];
  if (first?.streamVersion === snapshot.version) return first.id === snapshot.lastEventId;
  const firstLeft = first?.streamVersion ?? tail.version + 1;
  if (firstLeft > snapshot.version + 1) {
    report(
      new StorageError(
        `the snapshot of '${tail.streamId}' ends at version ${snapshot.version}, but the stream was truncated past it (its first event left is ${first ? `version ${firstLeft}` : 'none'}, its version ${tail.version}): events ${snapshot.version + 1} to ${firstLeft - 1} are in neither; the snapshot is deleted and the stream read from its first event left`,
      ),
    );
    return false;
  }
  return true;
}

/**
 * The first load of a command with snapshots: the latest snapshot of the
 * configured version, then only the events from its version on (the event at
 * its version is read too, to check its id). A snapshot of another version
 * is ignored (deleted when it is past the stream's end: taken of a stream
 * since deleted); one the stream does not continue is deleted; a snapshot store
 * that fails is reported. Each of these falls back to reading every event.
 */
export async function loadFromSnapshot<State, E extends Event>(
  store: EventStore,
  streamId: string,
  decider: Evolving<State, E>,
  snapshots: ResolvedSnapshots<State, E>,
): Promise<SnapshotStart<State>> {
  let snapshot: Snapshot | undefined;
  try {
    snapshot = await snapshots.store.load(streamId, { name: snapshots.name });
  } catch (error) {
    snapshots.report(error, streamId, 'load');
  }
  if (snapshot !== undefined && snapshot.snapshotVersion === snapshots.version) {
    const tail = await store.readStream<E>(streamId, { from: snapshot.version });
    if (continues(snapshot, tail, (error) => snapshots.report(error, streamId, 'load'))) {
      let restored: { state: State } | undefined;
      try {
        restored = { state: snapshots.fromSnapshot(snapshot.state) };
      } catch (error) {
        snapshots.report(error, streamId, 'load');
      }
      if (restored !== undefined) {
        const newer = tail.events[0]?.streamVersion === snapshot.version ? tail.events.slice(1) : tail.events;
        return {
          state: foldEvents(decider, newer as unknown as E[], restored.state),
          version: tail.version,
          lastId: tail.events[tail.events.length - 1]?.id ?? snapshot.lastEventId,
          base: snapshot.version,
        };
      }
    } else {
      // Left in place, it would refuse every newer save until the new stream outgrew it.
      try {
        await snapshots.store.delete(streamId, { name: snapshots.name });
      } catch (error) {
        snapshots.report(error, streamId, 'delete');
      }
    }
  }
  const loaded = await loadState(store, streamId, decider, undefined);
  if (snapshot !== undefined && snapshot.snapshotVersion !== snapshots.version && loaded.version < snapshot.version) {
    // A snapshot of another shape past the stream's end was taken of a stream since deleted: left in place, it
    // would refuse every newer save until the new stream outgrew it. One the stream may continue is left for the
    // code that reads it (a rolling deploy runs both).
    try {
      await snapshots.store.delete(streamId, { name: snapshots.name });
    } catch (error) {
      snapshots.report(error, streamId, 'delete');
    }
  }
  return { ...loaded, base: 0 };
}
