import type { Event, RecordedOf } from '../store/types.ts';
import type { ResolvedSnapshots } from './snapshot-options.ts';

/** What the command stored, for the snapshot policy. */
export interface Committed<State, E extends Event> {
  streamId: string;
  state: State;
  version: number;
  newEvents: readonly RecordedOf<E>[];
  /** The stream version of the snapshot the command started from (0 when none). */
  base: number;
}

const notSaved = Promise.resolve(false);

/** Whether the policy asks for a snapshot now. */
function due<State, E extends Event>(snapshots: ResolvedSnapshots<State, E>, committed: Committed<State, E>): boolean {
  const { every } = snapshots;
  if (every === undefined) return false;
  if (typeof every === 'number') return Math.floor(committed.version / every) > Math.floor(committed.base / every);
  return Boolean(
    every({
      state: committed.state,
      version: committed.version,
      newEvents: committed.newEvents,
      eventsSinceSnapshot: committed.version - committed.base,
    }),
  );
}

/**
 * Runs after the append committed: asks the policy, and when a snapshot is
 * due starts its save without waiting for it. The state is handed to the
 * store (which reads it) before this returns, so the caller may go on using
 * it. Resolves whether a snapshot was stored; never rejects: every failure
 * goes to `onError`.
 */
export function snapshotAfterCommit<State, E extends Event>(
  snapshots: ResolvedSnapshots<State, E>,
  committed: Committed<State, E>,
): Promise<boolean> {
  const { streamId, newEvents } = committed;
  const last = newEvents[newEvents.length - 1];
  if (last === undefined) return notSaved;
  let saving: Promise<boolean>;
  try {
    if (!due(snapshots, committed)) return notSaved;
  } catch (error) {
    snapshots.report(error, streamId, 'policy');
    return notSaved;
  }
  try {
    saving = snapshots.store.save({
      streamId,
      name: snapshots.name,
      version: committed.version,
      lastEventId: last.id,
      snapshotVersion: snapshots.version,
      state: snapshots.toSnapshot(committed.state),
    });
  } catch (error) {
    saving = Promise.reject(error);
  }
  return Promise.resolve(saving).then(
    (stored) => stored === true,
    (error: unknown) => {
      snapshots.report(error, streamId, 'save');
      return false;
    },
  );
}
