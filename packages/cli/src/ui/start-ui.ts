import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { CliError } from '../cli-error.ts';
import {
  type DeadLetterOperator,
  type DeadLetterReader,
  deadLetterReaderOf,
  type Inspector,
} from '../inspect/inspector.ts';
import { createDashboard } from './app.tsx';
import { allowedHosts, isLoopbackHost, newCsrfToken } from './security.ts';
import type { WorkflowActions } from './workflow-routes.tsx';

/** What the dashboard reads, kept open while the server runs (closed by `close()`): one of the two. */
export type UiSource =
  | {
      /** Read-only view of the database: every page. */
      inspector: Inspector;
      deadLetters?: never;
    }
  | {
      /** Dead letters without a database (a Redis application's): the dashboard is their pages alone. */
      deadLetters: DeadLetterReader & { close(): Promise<void> };
      inspector?: never;
    };

export type UiOptions = UiSource & {
  /** Opens a read-write connection for one redrive or discard. */
  openDeadLetterOperator: () => Promise<DeadLetterOperator>;
  /** Retry and cancel of workflow instances (with an inspector); without it the workflow pages only read. */
  workflows?: WorkflowActions;
  /** Default `127.0.0.1`. Any other than a loopback address requires `token`. */
  host?: string;
  /** Default 4400; 0 picks a free port. */
  port?: number;
  /** Every request must carry it (cookie set from `?token=`, or `Authorization: Bearer`). */
  token?: string;
  /** How often the projections page's lag is read and pushed. Default 1000 ms. */
  liveIntervalMs?: number;
  /** A request's failure (answered 500). Default: ignored. */
  onError?: (error: unknown) => void;
};

export interface RunningUi {
  /** `http://host:port/`, with the port chosen. */
  url: string;
  /** Stops listening, ends live streams and open connections, closes the inspector (or the dead-letter reader). */
  close(): Promise<void>;
}

const optionKeys = new Set([
  'inspector',
  'deadLetters',
  'openDeadLetterOperator',
  'workflows',
  'host',
  'port',
  'token',
  'liveIntervalMs',
  'onError',
]);

/** Closes what the dashboard reads. */
async function closeSource(options: UiOptions): Promise<void> {
  await options.inspector?.close();
  await options.deadLetters?.close();
}

/**
 * Serves the dashboard over `inspector`, or over `deadLetters` alone (its
 * dead-letter pages). Bound to 127.0.0.1 unless told otherwise; binding
 * elsewhere without a token is refused.
 *
 * @example
 * const ui = await startUi({ inspector, openDeadLetterOperator: async () => openSqliteDeadLetterOperator('app.db') });
 * console.log(`dashboard on ${ui.url}`);
 * // A Redis application's dead letters alone:
 * await startUi({
 *   deadLetters: await openRedisDeadLetterReader('redis://127.0.0.1:6379', 'shop'),
 *   openDeadLetterOperator: () => openRedisDeadLetterOperator('redis://127.0.0.1:6379', 'shop'),
 * });
 */
export async function startUi(options: UiOptions): Promise<RunningUi> {
  try {
    return await listen(options);
  } catch (error) {
    await closeSource(options);
    throw error;
  }
}

/** The dead letters the dashboard reads and, over a database, the inspector of its other pages. */
function sourceOf(options: UiOptions): { deadLetters: DeadLetterReader; inspector?: Inspector } {
  const { inspector, deadLetters } = options;
  if (inspector && deadLetters) throw new CliError('the ui reads an inspector or deadLetters, not both');
  if (inspector) return { inspector, deadLetters: deadLetterReaderOf(inspector) };
  if (!deadLetters) throw new CliError('the ui needs an inspector (a database) or deadLetters (dead letters alone)');
  if (options.workflows !== undefined) throw new CliError('the ui has workflow pages over an inspector only');
  return { deadLetters };
}

async function listen(options: UiOptions): Promise<RunningUi> {
  for (const key of Object.keys(options)) if (!optionKeys.has(key)) throw new CliError(`unknown ui option '${key}'`);
  const source = sourceOf(options);
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 4400;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`--port must be 0 to 65535, got ${port}`);
  if (!isLoopbackHost(host) && !options.token) {
    throw new CliError(`--host ${host} would let other machines in: give a --token too`);
  }
  if (options.token !== undefined && options.token.length < 8)
    throw new CliError('--token must be at least 8 characters');
  const stopping = new AbortController();
  let hosts: Set<string> | undefined;
  const app = createDashboard({
    ...source,
    openDeadLetterOperator: options.openDeadLetterOperator,
    ...(options.workflows === undefined ? {} : { workflows: options.workflows }),
    csrfToken: newCsrfToken(),
    token: options.token,
    allowedHosts: () => hosts,
    liveIntervalMs: options.liveIntervalMs ?? 1000,
    signal: stopping.signal,
    onError: options.onError ?? (() => undefined),
  });
  const server = createAdaptorServer({ fetch: app.fetch, hostname: host, port }) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new CliError(`cannot listen on ${host}:${port}: ${error.message}`)));
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  hosts = allowedHosts(host, bound);
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${bound}/`,
    async close() {
      stopping.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await closeSource(options);
    },
  };
}
