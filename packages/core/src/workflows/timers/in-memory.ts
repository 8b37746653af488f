import type { EventStore } from '../../store/types.ts';
import { timerChanges, timerEventTypes } from './timer-changes.ts';
import type { PendingTimer, TimerStore } from './types.ts';

/**
 * A timer store kept in memory from the instances' records in `store`: each
 * call first reads the records appended since the last one. For users' unit
 * tests and the scenario harness on the in-memory event store; the SQL
 * adapters keep theirs in a table written in each append's transaction.
 *
 * @example
 * const timers = getInMemoryTimerStore(store);
 * const due = await timers.due(Date.now(), 100);
 */
export function getInMemoryTimerStore(store: EventStore): TimerStore {
  const pending = new Map<string, PendingTimer>();
  let checkpoint = 0;

  const catchUp = async () => {
    const head = await store.headPosition();
    if (head <= checkpoint) return;
    const events = [];
    for await (const event of store.readAll({ after: checkpoint, types: timerEventTypes })) {
      if (event.position > head) break;
      events.push(event);
    }
    checkpoint = head;
    for (const change of timerChanges(events)) {
      switch (change.kind) {
        case 'schedule':
          for (const [id, timer] of pending) {
            if (timer.streamId === change.timer.streamId && timer.token === change.timer.token) pending.delete(id);
          }
          pending.set(change.timer.timerId, change.timer);
          break;
        case 'remove':
          pending.delete(change.timerId);
          break;
        case 'cancel':
        case 'end':
          for (const [id, timer] of pending) {
            if (timer.streamId === change.streamId && (change.kind === 'end' || timer.token === change.token)) {
              pending.delete(id);
            }
          }
          break;
      }
    }
  };

  const sorted = () => [...pending.values()].sort((a, b) => a.dueAt - b.dueAt || (a.timerId < b.timerId ? -1 : 1));

  return {
    async due(now, limit) {
      await catchUp();
      return sorted()
        .filter((timer) => timer.dueAt <= now)
        .slice(0, limit)
        .map((timer) => ({ ...timer }));
    },
    async nextDueAt() {
      await catchUp();
      return sorted()[0]?.dueAt;
    },
    async pendingCount() {
      await catchUp();
      return pending.size;
    },
    async remove(timerId) {
      await catchUp();
      pending.delete(timerId);
    },
  };
}
