import type pg from 'pg';
import { isConnectionFailure } from '../pg-errors.ts';
import {
  hasPrepared,
  type PipelinedStatement,
  prepareStatements,
  runPipeline,
  type StatementToPrepare,
} from './pipeline.ts';

/**
 * The connections appends are written on, kept checked out of the pool while
 * the store is open (at most one per batch in flight, and always leaving one
 * connection of the pool for reads): the write path skips the pool's checkout
 * and release on every append. A connection that fails
 * (server restart, `pg_terminate_backend`) is destroyed and replaced by a
 * fresh one from the pool on the next write.
 */
export class WriterConnections {
  private readonly idle: pg.PoolClient[] = [];
  private readonly held = new Set<pg.PoolClient>();

  /** Holds at most `limit` connections; past it (or with a limit of 0) a write borrows one for its query. */
  constructor(
    private readonly pool: pg.Pool,
    private readonly limit: number,
  ) {}

  async query<R extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<R[]> {
    let client = this.idle.pop();
    if (!client) {
      if (this.held.size >= this.limit) return (await this.pool.query<R>(config)).rows;
      client = await this.connect();
    }
    try {
      const result = await client.query<R>(config);
      this.idle.push(client);
      return result.rows;
    } catch (error) {
      if (isConnectionFailure(error)) this.discard(client, error);
      else this.idle.push(client);
      throw error;
    }
  }

  /**
   * Runs `statements` as one pipeline (one round trip, one implicit
   * transaction) on a held connection, preparing `texts` on it first when it
   * has not. Undefined when no held connection is free (a pool of one holds
   * none; a second write while the held one is busy): the caller then writes
   * another way.
   */
  async pipeline(
    texts: readonly StatementToPrepare[],
    statements: readonly PipelinedStatement[],
  ): Promise<(string | null)[][][] | undefined> {
    let client = this.idle.pop();
    if (!client) {
      if (this.held.size >= this.limit) return undefined;
      client = await this.connect();
    }
    try {
      if (!hasPrepared(client, texts)) {
        try {
          await prepareStatements(client, texts);
        } catch (error) {
          // Which statements exist on it now is unknown: do not use it again.
          this.discard(client, error);
          throw error;
        }
      }
      const rows = await runPipeline(client, statements);
      this.idle.push(client);
      return rows;
    } catch (error) {
      if (!this.held.has(client)) throw error;
      if (isConnectionFailure(error)) this.discard(client, error);
      else this.idle.push(client);
      throw error;
    }
  }

  /** Gives every connection back to the pool. */
  releaseAll(): void {
    for (const client of this.held) client.release();
    this.held.clear();
    this.idle.length = 0;
  }

  private async connect(): Promise<pg.PoolClient> {
    const client = await this.pool.connect();
    // A held connection the server closes while idle reports here; without a
    // listener the error would crash the process.
    client.on('error', (error) => this.discard(client, error));
    this.held.add(client);
    return client;
  }

  private discard(client: pg.PoolClient, error: unknown): void {
    if (!this.held.delete(client)) return;
    const at = this.idle.indexOf(client);
    if (at !== -1) this.idle.splice(at, 1);
    client.release(error instanceof Error ? error : true);
  }
}
