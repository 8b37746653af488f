import type { Transport } from '@factline/core';
import { getSqliteTransport } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';

/** The transport the example's services run on, and how to close it. */
export interface ExampleTransport {
  transport: Transport;
  /** Where the messages travel, for the printout. */
  describe: string;
  close(): Promise<void>;
}

/** Opens a broker transport from a URL; one module per URL scheme. */
type BrokerOpener = (url: string) => Promise<ExampleTransport>;

/**
 * The brokers the example can run on, by URL scheme. Each entry loads its
 * module only when chosen, so the SQLite default needs no broker package.
 */
const brokers: Record<string, () => Promise<BrokerOpener>> = {
  amqp: () => import('./transports/amqp.ts').then((m) => m.open),
  nats: () => import('./transports/nats.ts').then((m) => m.open),
  redis: () => import('./transports/redis.ts').then((m) => m.open),
};

/**
 * `FACTLINE_TRANSPORT` unset or empty: the SQLite transport in the store's
 * file (sharing its connection). A URL: the broker its scheme names
 * (`amqp://`, `nats://`, `redis://`, where that package is in the workspace).
 */
export async function transportFromEnv(
  database: Database,
  value: string | undefined = process.env.FACTLINE_TRANSPORT,
): Promise<ExampleTransport> {
  if (value === undefined || value === '') {
    const transport = getSqliteTransport({ database });
    return { transport, describe: 'SQLite transport', close: () => transport.close() };
  }
  let scheme: string;
  try {
    scheme = new URL(value).protocol.replace(/:$/, '');
  } catch {
    throw new Error(`FACTLINE_TRANSPORT must be a broker URL (e.g. amqp://127.0.0.1:5672), got '${value}'`);
  }
  const load = brokers[scheme];
  if (!load) {
    const known = Object.keys(brokers);
    throw new Error(
      `FACTLINE_TRANSPORT: no transport for '${scheme}://' in this example` +
        (known.length > 0 ? ` (known: ${known.map((s) => `${s}://`).join(', ')})` : ''),
    );
  }
  return (await load())(value);
}
