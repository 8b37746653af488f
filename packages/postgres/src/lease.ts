import { createHash } from 'node:crypto';
import type { Lease, LeaseProvider } from '@factline/core';
import { createLostSignal } from '@factline/core/adapter';
import pg from 'pg';
import { toStorageError } from './pg-errors.ts';

export interface PostgresLeasesOptions {
  /** Settings of the lease connection (see `dedicatedConnectionSettings`). */
  connection: pg.ClientConfig;
  /** The 64-bit advisory lock key (a decimal string) of a lease name. */
  keyOf(name: string): string;
  /**
   * The holder's check interval, ms: a query on the lease connection that
   * takes five times as long (at least 10 s) means the connection is dead, and
   * after losing it this holder waits two checks before taking leases again,
   * so a process standing by goes first.
   */
  checkMs: number;
}

const noop = () => undefined;

/** A 64-bit advisory lock key (a decimal string) from any text: the first 8 bytes of its SHA-256. */
export function advisoryLockKey(text: string): string {
  return createHash('sha256').update(text).digest().readBigInt64BE(0).toString();
}

/**
 * Has the server end `client`'s session once the client has been silent for
 * `ms` (its host gone, a network cut with no reset sent): ending it releases
 * the session's advisory locks, so a stand-by takes them over. Without it the
 * server keeps them until TCP gives up on the connection, two hours and more
 * with the operating system's defaults. A holder is never that silent: it
 * renews every check. `idle_session_timeout` on PostgreSQL 14 and later;
 * before, and for a dead host on every version, the session's TCP keepalives.
 */
async function endSessionWhenSilent(client: pg.Client, ms: number): Promise<void> {
  const seconds = Math.ceil(ms / 1000);
  const { rows } = await client.query<{ version: number }>(
    `SELECT set_config('tcp_keepalives_idle', $1, false), set_config('tcp_keepalives_interval', $2, false),
            set_config('tcp_keepalives_count', '3', false), current_setting('server_version_num')::int AS version`,
    [String(Math.max(1, Math.ceil(seconds / 2))), String(Math.max(1, Math.ceil(seconds / 6)))],
  );
  if ((rows[0]?.version ?? 0) >= 140_000) {
    await client.query(`SELECT set_config('idle_session_timeout', $1, false)`, [String(ms)]);
  }
}

/**
 * Core's `LeaseProvider` on PostgreSQL session advisory locks: every lease of
 * the provider is a `pg_try_advisory_lock` held by one dedicated connection,
 * opened on the first take. The server releases the locks when the session
 * ends, so a holder that crashes or loses its connection loses its leases
 * at once (every held lease's `onLost` listeners are called) and a stand-by
 * takes them at its next try; a holder gone silent loses them after
 * `max(10 s, 5 × checkMs)` (`endSessionWhenSilent`). A renewal checks that
 * the connection answers.
 */
export function createPostgresLeases(options: PostgresLeasesOptions): LeaseProvider {
  const { checkMs } = options;
  /** How long each side waits on a silent other before it takes the lease connection for dead. */
  const silenceMs = Math.max(10_000, 5 * checkMs);
  let connection: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  /** After losing the connection, not before: a process standing by takes over first. */
  let standByUntil = 0;
  let closed = false;
  let ping: Promise<boolean> | undefined;
  const leases = new Map<string, ReturnType<typeof advisoryLease>>();

  /** The lease connection ended: the server released its locks, so none is held here any more. */
  const connectionLost = (client: pg.Client) => {
    if (connection !== client) return;
    connection = undefined;
    client.end().catch(noop);
    let wasHolding = false;
    for (const lease of leases.values()) wasHolding = lease.drop() || wasHolding;
    if (wasHolding) standByUntil = Date.now() + 2 * checkMs;
  };

  const connect = (): Promise<pg.Client> => {
    if (connection) return Promise.resolve(connection);
    connecting ??= (async () => {
      const client = new pg.Client({
        ...options.connection,
        // The lease queries never wait on anything: one that hangs means a dead connection.
        query_timeout: silenceMs,
      });
      client.on('error', () => connectionLost(client));
      client.on('end', () => connectionLost(client));
      try {
        await client.connect();
        await endSessionWhenSilent(client, silenceMs);
      } catch (error) {
        client.end().catch(noop);
        throw toStorageError(error);
      }
      if (closed) {
        await client.end().catch(noop);
        throw toStorageError(new Error('the lease provider is closed'));
      }
      connection = client;
      return client;
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };

  /** A query on the lease connection; any failure (an error, a query timeout) means the connection is gone. */
  const query = async (client: pg.Client, text: string, values: unknown[]): Promise<pg.QueryResultRow[]> => {
    try {
      return (await client.query({ text, values })).rows;
    } catch (error) {
      connectionLost(client);
      throw toStorageError(error);
    }
  };

  /** One `SELECT 1` shared by the renewals of one check. */
  const alive = (): Promise<boolean> => {
    const client = connection;
    if (!client) return Promise.resolve(false);
    ping ??= query(client, 'SELECT 1', []).then(() => connection === client);
    return ping.finally(() => {
      ping = undefined;
    });
  };

  function advisoryLease(name: string) {
    const key = options.keyOf(name);
    const signal = createLostSignal();
    /** The connection holding this lease's lock, while held. */
    let holder: pg.Client | undefined;
    const lost = () => {
      holder = undefined;
      signal.fire();
    };
    const lease: Lease & { drop(): boolean; forget(): void } = {
      name,
      /** The provider closed: the session's end releases the lock, nobody is told. */
      forget() {
        holder = undefined;
      },
      /** The connection ended: true if this lease was held on it. */
      drop() {
        if (!holder) return false;
        lost();
        return true;
      },
      async acquire() {
        if (holder && holder === connection) return true;
        if (closed || Date.now() < standByUntil) return false;
        const client = await connect();
        const [row] = await query(client, 'SELECT pg_try_advisory_lock($1::bigint) AS taken', [key]);
        if (row?.taken !== true) return false;
        // Lost meanwhile: the server released the lock again.
        if (connection !== client) return false;
        holder = client;
        return true;
      },
      async renew() {
        if (!holder) return false;
        let answered = false;
        try {
          answered = holder === connection && (await alive());
        } finally {
          // A failed query ended the connection, which dropped the lease already.
          if (!answered && holder) lost();
        }
        return answered;
      },
      isHeld: () => holder !== undefined && holder === connection,
      async release() {
        const client = holder;
        holder = undefined;
        if (!client || client !== connection) return;
        await query(client, 'SELECT pg_advisory_unlock($1::bigint)', [key]);
      },
      onLost: signal.onLost,
    };
    return lease;
  }

  return {
    lease(name) {
      let lease = leases.get(name);
      if (!lease) {
        lease = advisoryLease(name);
        leases.set(name, lease);
      }
      return lease;
    },
    async close() {
      closed = true;
      await connecting?.catch(noop);
      const client = connection;
      connection = undefined;
      for (const lease of leases.values()) lease.forget();
      // Ending the session releases every lease it holds.
      if (client) await client.end().catch(noop);
    },
  };
}
