/**
 * Competing consumers in child processes for the e2e pipeline: `processes` children
 * (pipeline-consumer-child.ts), each one consumer of the same group with `lanes` lanes on a pool
 * (PostgreSQL) or connection (SQLite) of its own, compete for the transport's messages as separate
 * service instances would. The children live for the whole run (one consumer per trial), so their
 * code is warm after the workload's warm-up trial, as the parent's is.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { NODE_FLAGS } from '../code-under-test.ts';
import type { OpenRequest } from '../pipeline-consumer-child.ts';

const root = new URL('../../../', import.meta.url).pathname;
const script = new URL('../pipeline-consumer-child.ts', import.meta.url).pathname;
const ANSWER_MS = 30_000;

type FromChild = 'started' | 'ready' | 'closed' | { handled: [number, number][] } | { error: string };

interface Child {
  process: ChildProcess;
  /** Receives this trial's handled messages. */
  handled: (i: number, at: number) => void;
}

const children: Child[] = [];

/** Waits for `child` to answer `expected` (an error answer, its exit or ANSWER_MS rejects). */
function answer(child: Child, expected: 'started' | 'ready' | 'closed'): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      child.process.off('message', onMessage);
      child.process.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    const onMessage = (message: FromChild) => {
      if (message === expected) done();
      else if (typeof message === 'object' && 'error' in message) done(new Error(`consumer process: ${message.error}`));
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(new Error(`a consumer process ended (${signal ?? `exit code ${code}`})`));
    const timer = setTimeout(
      () => done(new Error(`a consumer process did not answer '${expected}' in ${ANSWER_MS} ms`)),
      ANSWER_MS,
    );
    child.process.on('message', onMessage);
    child.process.once('exit', onExit);
  });
}

async function spawnChild(): Promise<Child> {
  const process_ = spawn(process.execPath, [...NODE_FLAGS, script], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const child: Child = { process: process_, handled: () => {} };
  process_.on('message', (message: FromChild) => {
    if (typeof message === 'object' && 'handled' in message)
      for (const [i, at] of message.handled) child.handled(i, at);
  });
  process_.once('exit', () => {
    const at = children.indexOf(child);
    if (at >= 0) children.splice(at, 1);
  });
  children.push(child);
  try {
    await answer(child, 'started');
  } catch (error) {
    process_.kill('SIGKILL');
    throw error;
  }
  return child;
}

/** Ends the children (at the end of the run). */
export function endRemoteConsumers(): void {
  for (const child of children.splice(0)) child.process.kill('SIGKILL');
}

export interface RemoteConsumers {
  /** Stops every child's consumer (a child that does not answer is killed); always resolves. */
  stop(): Promise<void>;
}

/**
 * Starts one consumer in each of `processes` children (started on first use) and resolves once
 * each runs and its group is registered. `handled(i, at)` is called for every message a child
 * handled (`at`: epoch milliseconds).
 */
export async function startRemoteConsumers(
  options: OpenRequest & { processes: number; handled: (i: number, at: number) => void },
): Promise<RemoteConsumers> {
  const { processes, handled, ...request } = options;
  while (children.length < processes) await spawnChild();
  const used = children.slice(0, processes);
  const stop = async () => {
    await Promise.all(
      used.map(async (child) => {
        if (!child.process.connected) return;
        child.process.send('close');
        await answer(child, 'closed').catch(() => child.process.kill('SIGKILL'));
      }),
    );
  };
  try {
    await Promise.all(
      used.map((child) => {
        child.handled = handled;
        child.process.send({ open: request });
        return answer(child, 'ready');
      }),
    );
  } catch (error) {
    // A child may still be opening its consumer: end them (the next trial starts fresh ones).
    for (const child of used) child.process.kill('SIGKILL');
    throw error;
  }
  return { stop };
}
