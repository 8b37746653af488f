import type pg from 'pg';
import type { PipelinedStatement } from './pipeline.ts';
import type { AppendOutcomeRow } from './row-codec.ts';
import { Outcome } from './schema.ts';

/**
 * A separate notification waits this long past the interval, so that while
 * appends keep coming one of them carries it instead.
 */
const CARRY_SLACK_MS = 2;
/** How long appends stop carrying notifications after PostgreSQL's queue refused one. */
const CARRY_PAUSE_MS = 60_000;

/**
 * Whether `error` is PostgreSQL refusing a notification because its queue is
 * full ("too many notifications in the NOTIFY queue", raised in async.c at
 * commit). Its code, 54000 (program limit exceeded), is shared with other
 * refusals (an index row too big), which fail the append they came from only.
 */
export function isNotifyQueueFull(error: unknown): boolean {
  const { code, message, file } = (error ?? {}) as { code?: unknown; message?: unknown; file?: unknown };
  if (code !== '54000') return false;
  // The message may be translated (lc_messages); the source file is not, and the SQL keyword stays.
  return file === 'async.c' || (typeof message === 'string' && message.includes('NOTIFY'));
}

export interface NotifyStats {
  /** Notifications carried by an append's own transaction. */
  carriedNotifications: number;
  /** Notifications sent from another connection (after appends stopped, or from paths that cannot carry one). */
  separateNotifications: number;
}

export interface AppendSignalOptions {
  pool: pg.Pool;
  /** The NOTIFY channel (`appendChannel`). */
  channel: string;
  /** The prepared statement that notifies the head position (the last of a carrying pipeline). */
  notifyHead: { readonly name: string };
  /** Whether to NOTIFY other processes at all. */
  notifyAppends: boolean;
  notifyIntervalMs: number;
}

/**
 * Announcing appends: runners in this process are called directly after a
 * batch committed; other processes hear a `NOTIFY` with the head position, at
 * most one per interval, carried by an append's own pipeline when one is
 * about to be sent, sent from another connection when appends stopped. See
 * docs/postgres.md, "Signalling appends".
 */
export interface AppendSignal {
  readonly stats: NotifyStats;
  /** Adds a listener of new head positions; returns its removal. */
  onAppend(listener: (position: number) => void): () => void;
  /** Records the head an append's outcome reached (only appended outcomes count). */
  noteAppended(row: AppendOutcomeRow): void;
  /** After a batch committed: wakes this process's runners, then (coalesced) the others. */
  signal(): void;
  /** The statement that carries the notification, last in a pipeline. */
  readonly carriedNotify: PipelinedStatement;
  /**
   * Whether the pipeline about to be sent should carry the notification: when
   * the interval has passed since the last one. Claims the interval (returns
   * the time it replaced, for `unclaim` when the pipeline fails).
   */
  claim(): number | undefined;
  /** After a carrying pipeline failed (nothing of it committed): the notification is still owed. */
  unclaim(previous: number, error?: unknown): void;
  /** After a carrying pipeline committed: its last statement's row holds the head it announced. */
  carried(rows: (string | null)[][][]): void;
  /** No notification starts from now on (the store is closing). */
  stop(): void;
  /** Drops the listeners and waits for a notification under way. */
  close(): Promise<void>;
}

export function createAppendSignal(options: AppendSignalOptions): AppendSignal {
  const { pool, channel, notifyAppends, notifyIntervalMs } = options;
  const listeners = new Set<(position: number) => void>();
  const stats: NotifyStats = { carriedNotifications: 0, separateNotifications: 0 };
  const carriedNotify: PipelinedStatement = { name: options.notifyHead.name, values: [channel] };
  let stopped = false;
  let appendedHead = 0;
  let signalledHead = 0;
  let notifiedHead = 0;
  let notifying: Promise<void> | undefined;
  let notifyTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the last notification was sent or handed to an append to carry. */
  let lastNotifyAt = Number.NEGATIVE_INFINITY;
  /** Carrying is paused after PostgreSQL's notification queue refused one (it is full). */
  let carryPausedUntil = Number.NEGATIVE_INFINITY;

  /**
   * The separate notification, for appends no carried notification covered.
   * While appends keep coming, the first one after the interval carries it, so
   * this waits a little longer than the interval before sending its own.
   */
  const notifyOthers = () => {
    if (notifying || notifyTimer || stopped || appendedHead <= notifiedHead) return;
    const wait = lastNotifyAt + notifyIntervalMs - Date.now();
    if (wait > 0) {
      notifyTimer = setTimeout(() => {
        notifyTimer = undefined;
        notifyOthers();
      }, wait + CARRY_SLACK_MS);
      return;
    }
    lastNotifyAt = Date.now();
    const head = appendedHead;
    stats.separateNotifications += 1;
    notifying = pool
      .query('SELECT pg_notify($1, $2)', [channel, String(head)])
      .then(
        () => {
          if (head > notifiedHead) notifiedHead = head;
        },
        () => undefined, // runners elsewhere fall back to their periodic check
      )
      .finally(() => {
        notifying = undefined;
        notifyOthers();
      });
  };

  return {
    stats,
    carriedNotify,
    onAppend(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    noteAppended(row) {
      if (row.outcome === Outcome.appended && (row.last_pos as number) > appendedHead)
        appendedHead = row.last_pos as number;
    },
    signal() {
      if (appendedHead <= signalledHead) return;
      signalledHead = appendedHead;
      for (const listener of listeners) listener(appendedHead);
      if (notifyAppends) notifyOthers();
    },
    claim() {
      if (!notifyAppends || stopped) return undefined;
      const at = Date.now();
      if (at - lastNotifyAt < notifyIntervalMs || at < carryPausedUntil) return undefined;
      const previous = lastNotifyAt;
      lastNotifyAt = at;
      return previous;
    },
    unclaim(previous, error) {
      lastNotifyAt = previous;
      // At commit: "too many notifications in the NOTIFY queue" (a listener stopped reading).
      if (isNotifyQueueFull(error)) carryPausedUntil = Date.now() + CARRY_PAUSE_MS;
    },
    carried(rows) {
      stats.carriedNotifications += 1;
      const head = Number(rows.at(-1)?.[0]?.[0]);
      if (head > notifiedHead) notifiedHead = head;
    },
    stop() {
      stopped = true;
    },
    async close() {
      stopped = true;
      listeners.clear();
      if (notifyTimer) clearTimeout(notifyTimer);
      notifyTimer = undefined;
      await notifying;
    },
  };
}
