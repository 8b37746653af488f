import type { EventStore, StoreLimits } from '@factline/core';
import {
  checkDeleteRequest,
  checkTruncateRequest,
  decideDelete,
  decideTruncate,
  type StreamState,
} from '@factline/core/adapter';
import type pg from 'pg';
import { type StreamStateRow, typeParsers } from './row-codec.ts';
import type { StoreStatements } from './statements.ts';
import { inStoreTransaction } from './store-transaction.ts';

export interface StreamRemovalOptions {
  pool: pg.Pool;
  statements: StoreStatements;
  limits: StoreLimits;
  /** Throws `StoreClosedError` once the store closed. */
  open: () => void;
}

/**
 * `deleteStream` and `truncateBefore`: each in a transaction holding the
 * append lock, so that no append interleaves; the decisions are core's.
 */
export function createStreamRemoval(
  options: StreamRemovalOptions,
): Pick<EventStore, 'deleteStream' | 'truncateBefore'> {
  const { pool, statements, limits, open } = options;

  /** Runs `work` in a transaction holding the append lock. */
  const underAppendLock = (work: (client: pg.PoolClient) => Promise<void>): Promise<void> =>
    inStoreTransaction(pool, async (client) => {
      await client.query(statements.appendLock);
      await work(client);
    });

  const streamState = async (client: pg.PoolClient, streamId: string): Promise<StreamStateRow> => {
    const result = await client.query<StreamStateRow>({
      text: statements.streamState,
      values: [streamId],
      types: typeParsers,
    });
    return result.rows[0] as StreamStateRow;
  };

  const record = (client: pg.PoolClient, streamId: string, state: StreamState) =>
    client.query(statements.recordStream, [streamId, state.version, state.truncatedBefore, Boolean(state.tombstoned)]);

  return {
    async deleteStream(streamId, deleteOptions) {
      open();
      const request = checkDeleteRequest(streamId, deleteOptions, limits);
      await underAppendLock(async (client) => {
        const tombstone = decideDelete(streamId, await streamState(client, streamId), request);
        await client.query(statements.deleteEvents, [streamId, Number.MAX_SAFE_INTEGER]);
        if (tombstone) await record(client, streamId, tombstone);
        else await client.query(statements.forgetStream, [streamId]);
      });
    },

    async truncateBefore(streamId, version) {
      open();
      const requested = checkTruncateRequest(streamId, version, limits);
      await underAppendLock(async (client) => {
        const stream = await streamState(client, streamId);
        const before = decideTruncate(streamId, stream, requested);
        if (before === undefined) return;
        await client.query(statements.deleteEvents, [streamId, before]);
        await record(client, streamId, { ...stream, truncatedBefore: before });
      });
    },
  };
}
