/**
 * Competing consumers in child processes for the e2e pipeline: `processes` children
 * (pipeline-consumer-child.ts), each one consumer of the same group with `lanes` lanes on a pool
 * (PostgreSQL) or connection (SQLite) of its own, compete for the transport's messages as separate
 * service instances would.
 */
import { type ChildProcess, spawn } from 'node:child_process';

const NODE_FLAGS = ['--conditions=factline-source', '--import', 'tsx'];
const root = new URL('../../../', import.meta.url).pathname;
const child = new URL('../pipeline-consumer-child.ts', import.meta.url).pathname;
const READY_MS = 30_000;
const STOP_MS = 15_000;

export interface RemoteConsumers {
  /** Stops every child (killed if it has not exited after STOP_MS); always resolves. */
  stop(): Promise<void>;
}

/** Waits for `process` to exit, killing it after `ms`. */
function exited(process: ChildProcess, ms: number): Promise<void> {
  if (process.exitCode !== null || process.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => process.kill('SIGKILL'), ms);
    process.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Starts the children and resolves once each has its consumer running and its group registered.
 * `handled(i, at)` is called for every message a child handled (`at`: epoch milliseconds).
 */
export async function startRemoteConsumers(options: {
  adapter: 'postgres' | 'sqlite';
  /** The PostgreSQL connection string, or the SQLite file. */
  where: string;
  /** The PostgreSQL schema (ignored on SQLite). */
  schema: string;
  topic: string;
  processes: number;
  lanes: number;
  groupCommit: boolean;
  handled: (i: number, at: number) => void;
}): Promise<RemoteConsumers> {
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      children.map((c) => {
        if (c.connected) c.send('stop');
        return exited(c, STOP_MS);
      }),
    );
  };
  try {
    await Promise.all(
      Array.from({ length: options.processes }, () => {
        const args = [
          options.adapter,
          options.where,
          options.schema,
          options.topic,
          String(options.lanes),
          String(options.groupCommit),
        ];
        const c = spawn(process.execPath, [...NODE_FLAGS, child, ...args], {
          cwd: root,
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        children.push(c);
        c.on('message', (message: 'ready' | { handled: [number, number][] }) => {
          if (message !== 'ready') for (const [i, at] of message.handled) options.handled(i, at);
        });
        return new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`a consumer process was not ready after ${READY_MS} ms`)),
            READY_MS,
          );
          c.on('message', (message) => {
            if (message !== 'ready') return;
            clearTimeout(timer);
            resolve();
          });
          c.once('exit', (code, signal) => {
            clearTimeout(timer);
            reject(new Error(`a consumer process ended (${signal ?? `exit code ${code}`})`));
          });
        });
      }),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}
