import type pg from 'pg';
import { connectBounded } from '../checkout.ts';
import { isConnectionFailure } from '../pg-errors.ts';
import type { PoolLedger, YieldingHolder } from '../pool-ledger.ts';
import {
  hasPrepared,
  type PipelinedStatement,
  prepareStatements,
  runPipeline,
  type StatementToPrepare,
} from './pipeline.ts';

/**
 * The connections appends are written on, kept checked out of the pool while
 * the store is open and nobody else needs them (at most one per batch in
 * flight, each a slot of the pool's ledger, so the pool's last connection
 * stays free for reads; given back as soon as another component of the
 * process waits for a slot): the write path skips the pool's checkout and
 * release on every append. A connection that fails
 * (server restart, `pg_terminate_backend`) is destroyed and replaced by a
 * fresh one from the pool on the next write.
 */
export class WriterConnections implements YieldingHolder {
  private readonly idle: pg.PoolClient[] = [];
  private readonly held = new Set<pg.PoolClient>();
  private readonly unregister: () => void;

  /**
   * Holds at most `limit` connections, each while the ledger has a free slot;
   * past that a write borrows a connection for its query.
   */
  constructor(
    private readonly pool: pg.Pool,
    private readonly limit: number,
    private readonly ledger: PoolLedger,
  ) {
    this.unregister = ledger.addYielding(this);
  }

  /** Gives the idle connections back now; busy ones go back when their write ends. */
  yieldConnections(): void {
    for (const client of this.idle.splice(0)) this.drop(client);
  }

  async query<R extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<R[]> {
    const client = this.idle.pop() ?? (await this.connect());
    if (!client) return (await this.pool.query<R>(config)).rows;
    try {
      const result = await client.query<R>(config);
      this.putBack(client);
      return result.rows;
    } catch (error) {
      if (isConnectionFailure(error)) this.discard(client, error);
      else this.putBack(client);
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
    const client = this.idle.pop() ?? (await this.connect());
    if (!client) return undefined;
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
      this.putBack(client);
      return rows;
    } catch (error) {
      if (!this.held.has(client)) throw error;
      if (isConnectionFailure(error)) this.discard(client, error);
      else this.putBack(client);
      throw error;
    }
  }

  /** Gives every connection back to the pool, and stops holding any. */
  releaseAll(): void {
    this.unregister();
    for (const client of [...this.held]) this.drop(client);
    this.idle.length = 0;
  }

  /** A new held connection, or undefined when the limit or the ledger says no. */
  private async connect(): Promise<pg.PoolClient | undefined> {
    if (this.held.size >= this.limit || !this.ledger.tryAcquire()) return undefined;
    let client: pg.PoolClient;
    try {
      client = await connectBounded(this.pool);
    } catch (error) {
      this.ledger.release();
      throw error;
    }
    // A held connection the server closes while idle reports here; without a
    // listener the error would crash the process.
    client.on('error', (error) => this.discard(client, error));
    this.held.add(client);
    return client;
  }

  /** Keeps a connection after its write, unless another component waits for a slot. */
  private putBack(client: pg.PoolClient): void {
    if (!this.held.has(client)) return;
    if (this.ledger.wanted()) this.drop(client);
    else this.idle.push(client);
  }

  private drop(client: pg.PoolClient, error?: unknown): void {
    if (!this.held.delete(client)) return;
    const at = this.idle.indexOf(client);
    if (at !== -1) this.idle.splice(at, 1);
    client.release(error === undefined ? undefined : error instanceof Error ? error : true);
    this.ledger.release();
  }

  private discard(client: pg.PoolClient, error: unknown): void {
    this.drop(client, error ?? true);
  }
}
