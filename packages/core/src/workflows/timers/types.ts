import type { TimerScheduledData } from '../records.ts';

/**
 * The timer port. Timers are not written through it: an instance records
 * `$workflow.timer-scheduled`, `-cancelled`, fired inputs and completion in
 * its stream, and each store keeps its timer table from those records (on the
 * SQL stores as an inline projection, in the append's own transaction), so a
 * timer is scheduled exactly when its decision commits. Rules every adapter
 * keeps (checked by the timer conformance suite in `@factline/core/testing`):
 * - a scheduled timer is pending until its fired input, a cancel of its
 *   token, a newer schedule of its token, or the instance's end is recorded;
 * - `due` returns pending timers due at or before `now`, earliest first;
 * - pending timers survive a restart of the process and of the store.
 */
export interface PendingTimer {
  /** The id of the event that scheduled it. */
  timerId: string;
  /** The instance's stream. */
  streamId: string;
  /** The workflow: the stream's category. */
  workflow: string;
  token: string;
  /** Milliseconds since the epoch. */
  dueAt: number;
  /** As scheduled: with the schema version of its type when the store's registry defines it (see `TimerScheduledData`). */
  message: TimerScheduledData['message'];
  /** The scheduling decision's metadata (correlation), carried to the fired input. */
  metadata: Record<string, unknown>;
}

export interface TimerStore {
  /** Pending timers due at or before `now` (ms), earliest first, at most `limit`. */
  due(now: number, limit: number): Promise<PendingTimer[]>;
  /** The earliest due time of any pending timer, or `undefined` when none is pending. */
  nextDueAt(): Promise<number | undefined>;
  /** How many timers are pending. */
  pendingCount(): Promise<number>;
  /** Drops a timer whose instance is gone (deleted stream): nothing records its end. */
  remove(timerId: string): Promise<void>;
}

/** What one recorded event does to the timer table. */
export type TimerChange =
  | { kind: 'schedule'; timer: PendingTimer }
  | { kind: 'remove'; timerId: string }
  | { kind: 'cancel'; streamId: string; token: string }
  | { kind: 'end'; streamId: string };
