import type { EventStore, StoreLimits } from '@factline/core';
import { checkDeleteRequest, checkTruncateRequest, decideDelete, decideTruncate } from '@factline/core/adapter';
import type { StoreStatements } from './statements.ts';
import type { WriteQueue } from './write-queue.ts';

export interface StreamRemovalOptions {
  sql: StoreStatements;
  writes: WriteQueue;
  limits: StoreLimits;
  /** Clock for the head marker's `recorded_at`. */
  now: () => number;
  /** Throws `StoreClosedError` once the store closed. */
  open: () => void;
}

/**
 * `deleteStream` and `truncateBefore`: each a job of the write queue, so that
 * no append interleaves; the decisions are core's.
 */
export function createStreamRemoval(
  options: StreamRemovalOptions,
): Pick<EventStore, 'deleteStream' | 'truncateBefore'> {
  const { sql, writes, limits, now, open } = options;

  /**
   * SQLite gives a new row the highest position + 1, so deleting the newest
   * events would hand their positions out again and a reader that saw them
   * would skip the newcomers. Plain `INTEGER PRIMARY KEY` is cheaper per append
   * than AUTOINCREMENT, so deletions guard instead: when they remove the head,
   * they leave a marker row there (empty stream id, which no stream can have,
   * and an id with a control character, which no event can have; reads skip it).
   */
  const keepHeadPosition = (deleteRows: () => void) => {
    const { head } = sql.head.get() as { head: number };
    deleteRows();
    if ((sql.head.get() as { head: number }).head < head) sql.headMarker.run(head, `\u0001head-${head}`, -head, now());
  };

  const streamState = (streamId: string) => sql.stream.get(streamId, streamId);

  return {
    async deleteStream(streamId, deleteOptions) {
      open();
      const request = checkDeleteRequest(streamId, deleteOptions, limits);
      await writes.enqueue(() => {
        const tombstone = decideDelete(streamId, streamState(streamId), request);
        keepHeadPosition(() => sql.deleteEvents.run(streamId));
        if (tombstone) sql.recordStream.run(streamId, tombstone.version, tombstone.truncatedBefore, 1);
        else sql.forgetStream.run(streamId);
      });
    },

    async truncateBefore(streamId, version) {
      open();
      const requested = checkTruncateRequest(streamId, version, limits);
      await writes.enqueue(() => {
        const stream = streamState(streamId);
        const before = decideTruncate(streamId, stream, requested);
        if (before === undefined) return;
        keepHeadPosition(() => sql.deleteEventsBefore.run(streamId, before));
        sql.recordStream.run(streamId, (stream as { version: number }).version, before, 0);
      });
    },
  };
}
