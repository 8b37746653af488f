import assert from 'node:assert/strict';
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { getPostgresEventStore } from './postgres-event-store.ts';

// A PostgreSQL restart while a writer appends: the store must report the lost
// connections as retryable, retries with the same ids must not duplicate
// anything, and once the server is back appends must work as before. The
// server restarted is a private throwaway cluster on a free port, never the
// shared one other test files use.

const run = promisify(execFile);

/** Polls `condition` until it returns a value (not `undefined`), for at most `deadlineMs`. */
async function waitFor<T>(condition: () => Promise<T | undefined> | T | undefined, deadlineMs: number, what: string) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() <= deadline) {
    const value = await condition();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
}

interface Cluster {
  bin: string;
  dir: string;
  data: string;
  log: string;
  port: number;
  url: string;
  /** The command prefix that runs a PostgreSQL program as the cluster's owner. */
  asOwner: (program: string, args: string[]) => [string, string[]];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** The newest PostgreSQL installation with initdb and pg_ctl, or why there is none. */
function findPostgresBin(): string | { reason: string } {
  const root = '/usr/lib/postgresql';
  let versions: string[];
  try {
    versions = readdirSync(root);
  } catch {
    return { reason: `${root} does not exist` };
  }
  const bins = versions
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(root, v, 'bin'))
    .filter((bin) => existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl')));
  return bins[0] ?? { reason: `no initdb and pg_ctl under ${root}` };
}

const serverOptions = (cluster: Pick<Cluster, 'port' | 'dir'>) =>
  `-p ${cluster.port} -k ${cluster.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20`;

function pgCtl(cluster: Cluster, args: string[]): [string, string[]] {
  return cluster.asOwner(join(cluster.bin, 'pg_ctl'), ['-D', cluster.data, '-l', cluster.log, ...args]);
}

function stopClusterNow(cluster: Cluster): void {
  try {
    const [command, args] = pgCtl(cluster, ['-m', 'immediate', '-w', 'stop']);
    execFileSync(command, args, { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // not running
  }
}

/** initdb and start a cluster in a new temporary directory; on failure nothing is left behind. */
async function startCluster(): Promise<Cluster | { reason: string }> {
  const bin = findPostgresBin();
  if (typeof bin !== 'string') return bin;
  const asRoot = process.getuid?.() === 0;
  let owner: { uid: number; gid: number } | undefined;
  if (asRoot) {
    // initdb refuses to run as root: the cluster belongs to the postgres user.
    try {
      owner = {
        uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
        gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
      };
    } catch {
      return { reason: 'running as root and there is no postgres user to own the cluster' };
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'factline-pg-restart-'));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const cluster: Cluster = {
    bin,
    dir,
    data: join(dir, 'data'),
    log: join(dir, 'server.log'),
    port: 0,
    url: '',
    asOwner: (program, args) => (asRoot ? ['runuser', ['-u', 'postgres', '--', program, ...args]] : [program, args]),
  };
  const step = async (what: string, [command, args]: [string, string[]]) => {
    try {
      await run(command, args, { timeout: 30_000 });
    } catch (error) {
      const output = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
      throw new Error(`${what} failed: ${output}`);
    }
  };
  try {
    await step(
      'initdb',
      cluster.asOwner(join(bin, 'initdb'), ['-D', cluster.data, '-A', 'trust', '-U', 'postgres', '--no-sync']),
    );
    // A port found free may be taken before the server binds it: try a few.
    for (let attempt = 1; ; attempt++) {
      cluster.port = await freePort();
      try {
        await step('pg_ctl start', pgCtl(cluster, ['-o', serverOptions(cluster), '-w', '-t', '30', 'start']));
        break;
      } catch (error) {
        if (attempt >= 3) throw error;
      }
    }
    cluster.url = `postgres://postgres@127.0.0.1:${cluster.port}/postgres`;
    return cluster;
  } catch (error) {
    stopClusterNow(cluster);
    rmSync(dir, { recursive: true, force: true });
    return { reason: `cannot start a private PostgreSQL cluster: ${(error as Error).message}` };
  }
}

const started = await startCluster();
let skip: string | false = false;
let cluster: Cluster | undefined;
if ('reason' in started) {
  if (process.env.FACTLINE_REQUIRE_SERVICES === '1') throw new Error(`FACTLINE_REQUIRE_SERVICES=1: ${started.reason}`);
  console.log(`# skipped: ${started.reason}`);
  skip = started.reason;
} else {
  cluster = started;
}

/** Stops the cluster and removes its directory, once. */
function removeCluster(): void {
  if (!cluster) return;
  const gone = cluster;
  cluster = undefined;
  stopClusterNow(gone);
  rmSync(gone.dir, { recursive: true, force: true });
}
// Should the process end without running `after` (a killed run), the cluster must still go.
process.once('exit', removeCluster);
after(removeCluster);

/** The postmaster's pid as its pid file names it, or `undefined` while there is no pid file. */
function postmasterPid(data: string): number | undefined {
  try {
    return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}

function exited(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

describe('postgres store: a server restart during a run', { skip }, () => {
  it('the store reconnects; retried appends are stored once; later appends succeed', { timeout: 60_000 }, async () => {
    const server = cluster as Cluster;
    const store = await getPostgresEventStore({ connectionString: server.url, schema: 'factline', poolSize: 4 });
    const total = 300;
    const restartAfter = 50;
    // If the writer got this far and the restart has not reached the server yet, it waits for the
    // old server to be gone, so that the restart always falls in the middle of the run.
    const gate = 150;
    const ids = Array.from({ length: total }, () => randomUUID());
    const failures: string[] = [];
    let restart: Promise<{ code: number | null; stderr: string }> | undefined;
    const oldPid = postmasterPid(server.data);
    assert.ok(oldPid, 'the private server should be running');
    try {
      for (let i = 0; i < total; i++) {
        if (i === restartAfter) {
          const [command, args] = pgCtl(server, [
            '-o',
            serverOptions(server),
            '-m',
            'fast',
            '-w',
            '-t',
            '30',
            'restart',
          ]);
          restart = exited(spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
        }
        if (i === gate && failures.length === 0) {
          await waitFor(
            () => (postmasterPid(server.data) === oldPid ? undefined : true),
            15_000,
            'the old server to stop',
          );
        }
        const deadline = Date.now() + 30_000;
        let backoff = 5;
        for (let attempt = 1; ; attempt++) {
          try {
            await store.append(`order-${i % 10}`, [{ id: ids[i], type: 'Ticked', data: { i } }], {
              expectedVersion: 'any',
            });
            break;
          } catch (error) {
            const e = error as { code?: unknown; retryable?: unknown; message?: unknown };
            if (e.code !== 'STORAGE' || e.retryable !== true) {
              throw new Error(`append ${i} (attempt ${attempt}) failed and may not be retried: ${String(e.message)}`, {
                cause: error,
              });
            }
            failures.push(`append ${i}, attempt ${attempt}: ${String(e.message)}`);
            if (Date.now() > deadline) throw new Error(`append ${i} still failing after 30 s`, { cause: error });
            await new Promise((resolve) => setTimeout(resolve, backoff));
            backoff = Math.min(backoff * 2, 100);
          }
        }
      }

      // (a) The restart happened while the writer ran: some appends failed.
      assert.ok(failures.length > 0, 'no append failed: the restart did not happen during the run');
      assert.ok(restart, 'the restart was started');
      const restarted = await restart;
      assert.equal(restarted.code, 0, `pg_ctl restart failed: ${restarted.stderr}`);
      const newPid = postmasterPid(server.data);
      assert.ok(newPid !== undefined && newPid !== oldPid, 'a new server should be running');

      // (b, c) All appends are stored, each once, in increasing positions.
      const events = [];
      for await (const event of store.readAll({ after: 0 })) events.push(event);
      assert.equal(events.length, total);
      assert.equal(new Set(events.map((e) => e.id)).size, total);
      assert.deepEqual(new Set(events.map((e) => e.id)), new Set(ids));
      for (let k = 1; k < events.length; k++) {
        assert.ok(
          (events[k]?.position ?? 0) > (events[k - 1]?.position ?? 0),
          `positions not increasing at ${k}: ${events[k - 1]?.position}, ${events[k]?.position}`,
        );
      }
      for (let stream = 0; stream < 10; stream++) {
        const read = await store.readStream(`order-${stream}`);
        assert.equal(read.version, total / 10);
        assert.deepEqual(
          read.events.map((e) => (e.data as { i: number }).i),
          Array.from({ length: total / 10 }, (_, k) => stream + 10 * k),
        );
      }

      // (d) With the server up, an append succeeds on the first try.
      const last = await store.append('order-after', [{ type: 'Ticked', data: { i: total } }], {
        expectedVersion: 'no-stream',
      });
      assert.equal(last.version, 1);
      assert.ok(last.position > (events[events.length - 1]?.position ?? 0));
      console.log(`${failures.length} failed attempts during the restart; first: ${failures[0]}`);
    } finally {
      await store.close();
      await restart?.catch(() => undefined);
    }
  });
});
