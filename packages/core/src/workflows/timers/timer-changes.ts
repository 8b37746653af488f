import type { RecordedEvent } from '../../store/types.ts';
import { streamCategory } from '../../store/validation.ts';
import {
  type InputRecordData,
  type ParkedRecordData,
  workflowEventTypes as T,
  type TimerScheduledData,
} from '../records.ts';
import type { TimerChange } from './types.ts';

/** The event types a timer table is kept from. */
export const timerEventTypes: readonly string[] = [
  T.timerScheduled,
  T.timerCancelled,
  T.input,
  T.deferred,
  T.parked,
  T.completed,
  T.cancelled,
];

/**
 * What recorded instance events do to the timer table, in order: a schedule
 * replaces the pending timer of its token; a cancel removes it; a fired
 * timer's input (or its deferral, or the park it caused) removes that timer; the
 * instance's end removes all of its timers. Every timer store applies these,
 * so the rule is written once.
 *
 * @example
 * for (const change of timerChanges(events)) applyToTable(change);
 */
export function timerChanges(events: readonly RecordedEvent[]): TimerChange[] {
  const changes: TimerChange[] = [];
  for (const event of events) {
    switch (event.type) {
      case T.timerScheduled: {
        const data = event.data as TimerScheduledData;
        changes.push({
          kind: 'schedule',
          timer: {
            timerId: event.id,
            streamId: event.streamId,
            workflow: streamCategory(event.streamId),
            token: data.token,
            dueAt: data.dueAt,
            message: data.message,
            metadata: { ...event.metadata },
          },
        });
        break;
      }
      case T.timerCancelled:
        changes.push({ kind: 'cancel', streamId: event.streamId, token: (event.data as { token: string }).token });
        break;
      case T.input:
      case T.deferred: {
        const timer = (event.data as InputRecordData).timer;
        if (timer) changes.push({ kind: 'remove', timerId: timer.timerId });
        break;
      }
      case T.parked: {
        const timer = (event.data as ParkedRecordData).input.timer;
        if (timer) changes.push({ kind: 'remove', timerId: timer.timerId });
        break;
      }
      case T.completed:
      case T.cancelled:
        changes.push({ kind: 'end', streamId: event.streamId });
        break;
    }
  }
  return changes;
}
