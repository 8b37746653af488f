import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { waitUntil } from '@factline/core/testing';
import { type Cluster, pgCtl, postmasterPid, privateCluster, serverOptions } from '../fixtures/private-cluster.ts';
import { getPostgresEventStore } from './postgres-event-store.ts';

// A PostgreSQL restart while a writer appends: the store must report the lost
// connections as retryable, retries with the same ids must not duplicate
// anything, and once the server is back appends must work as before. The
// server restarted is a private throwaway cluster on a free port, never the
// shared one other test files use.

const { cluster, skip, remove } = await privateCluster();
after(remove);

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
          await waitUntil(() => postmasterPid(server.data) !== oldPid, 'the old server to stop', 15_000, 10);
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
