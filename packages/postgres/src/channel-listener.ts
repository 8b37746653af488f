import { type Logger, StorageError } from '@factline/core';
import { log } from '@factline/core/adapter';
import pg from 'pg';

/** Called with a notification's payload, or `undefined` when notifications may have been missed. */
type Subscriber = (payload: string | undefined) => void;

export interface ChannelListenerOptions {
  /** Settings of the dedicated connection. */
  connection: pg.ClientConfig;
  /** The NOTIFY channel (the store's appends, a transport's publishes). */
  channel: string;
  /** First reconnect delay ceiling, ms; it doubles per failed attempt up to `reconnectMaxMs`. */
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /**
   * Told the first failure of each run of failed connects or LISTENs (a drop, refused credentials, a pooler
   * that does not pass LISTEN on), not each retry of it; subscribers go on with their own timeouts meanwhile.
   */
  onError?: (error: unknown) => void;
}

/**
 * One dedicated connection (a `pg.Client`, not from the pool) that LISTENs on
 * one channel and hands each notification's payload to the subscribers.
 * It is opened by the first subscriber and kept until `close()`. When it
 * drops (server restart, `pg_terminate_backend`, network), it reconnects with
 * jittered, doubling delays; while it is down subscribers hear nothing and
 * fall back on their own timeouts. Once listening again it wakes every
 * subscriber (with `undefined`), since what was sent while it was down was not heard.
 */
export class ChannelListener {
  private client: pg.Client | undefined;
  private active = false;
  private wanted = false;
  private attempt = 0;
  /** A failure of the current run was told (`onError`): the next is told only once listening again. */
  private told = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly subscribers = new Set<Subscriber>();
  /** Connections that were listening and dropped (for tests and diagnostics). */
  drops = 0;

  constructor(private readonly options: ChannelListenerOptions) {}

  /** True while the connection is up and its LISTEN is in effect. */
  get listening(): boolean {
    return this.active;
  }

  /** Adds a subscriber (opening the connection if needed); returns its removal. */
  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber);
    if (!this.wanted) {
      this.wanted = true;
      void this.connect();
    }
    return () => {
      this.subscribers.delete(subscriber);
    };
  }

  /** Ends the connection and stops reconnecting; a later `subscribe` opens it again. */
  async close(): Promise<void> {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.attempt = 0;
    const client = this.client;
    this.client = undefined;
    this.active = false;
    if (client) await client.end().catch(() => undefined);
  }

  private wake(payload: string | undefined): void {
    for (const subscriber of [...this.subscribers]) subscriber(payload);
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    if (!this.wanted || this.client) return;
    const { connection, channel } = this.options;
    const client = new pg.Client(connection);
    this.client = client;
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, new Error('the connection ended')));
    client.on('notification', (message) => {
      if (message.channel !== channel) return;
      this.wake(message.payload || undefined);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${channel}"`);
    } catch (error) {
      this.lost(client, error);
      return;
    }
    if (this.client !== client) {
      // Closed or lost while connecting.
      await client.end().catch(() => undefined);
      return;
    }
    this.active = true;
    this.attempt = 0;
    this.told = false;
    this.wake(undefined);
  }

  private lost(client: pg.Client, error: unknown): void {
    if (this.client !== client) return;
    if (this.active) this.drops += 1;
    this.client = undefined;
    this.active = false;
    client.end().catch(() => undefined);
    if (!this.wanted) return;
    if (!this.told) {
      this.told = true;
      try {
        this.options.onError?.(error);
      } catch {
        // The hook's own failure changes nothing.
      }
    }
    const { reconnectInitialMs, reconnectMaxMs } = this.options;
    const ceiling = Math.min(reconnectMaxMs, reconnectInitialMs * 2 ** this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => void this.connect(), ceiling * (0.5 + Math.random() / 2));
    // Background work: it must not keep a process alive that has nothing else to do.
    this.timer.unref?.();
  }
}

/**
 * A `ChannelListener`'s `onError` for a loop that falls back on polling: each failure told to the loop's
 * `onError` as a `StorageError` saying what `who` does meanwhile (a hook that throws changes nothing), and
 * logged at `warn`.
 *
 * @example
 * new ChannelListener({ ..., onError: listenFailureReporter('the outbox relay', channel, 'it polls every 100 ms', options) });
 */
export function listenFailureReporter(
  who: string,
  channel: string,
  meanwhile: string,
  hooks: { onError?: (error: unknown) => void; logger?: Logger },
): (error: unknown) => void {
  return (error) => {
    const problem = new StorageError(
      `${who} cannot LISTEN on ${channel} (${error instanceof Error ? error.message : String(error)}): ${meanwhile} until the connection is back`,
      { cause: error },
    );
    try {
      hooks.onError?.(problem);
    } catch {
      // The hook's own failure changes nothing.
    }
    log(hooks.logger, 'warn', { err: problem }, `${who}: LISTEN connection failed`);
  };
}
