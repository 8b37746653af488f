import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { testTransportConformance, waitUntil } from '@factline/core/testing';
import { getSqliteTransport, type SqliteTransport } from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-sqlite-transport-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `db-${++n}.db`);

testTransportConformance({
  name: 'sqlite (file)',
  createTransport: (() => {
    const shared = file();
    return () => getSqliteTransport({ path: shared, pollIntervalMs: 20 });
  })(),
});

const childScript = new URL('./fixtures/transport-child.ts', import.meta.url).pathname;

interface Child {
  child: ChildProcess;
  stdout(): string;
  exited: Promise<number | null>;
}

function startChild(args: string[]): Child {
  const child = spawn(process.execPath, ['--conditions=factline-source', '--import', 'tsx', childScript, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('exit', (code, signal) => {
      if (code === 0 || signal === 'SIGKILL') resolve(code);
      else reject(new Error(`child exited ${code ?? signal}: ${stderr}`));
    });
  });
  exited.catch(() => undefined);
  return { child, stdout: () => stdout, exited };
}

function prepareFile(): { path: string; transport: SqliteTransport } {
  const path = file();
  const transport = getSqliteTransport({ path, pollIntervalMs: 20 });
  transport.database.exec(`
    CREATE TABLE test_deliveries (message_id TEXT NOT NULL, pid INTEGER NOT NULL, at INTEGER NOT NULL);
    CREATE TABLE test_effects (message_id TEXT NOT NULL, pid INTEGER NOT NULL);
    CREATE TABLE test_inbox (consumer TEXT NOT NULL, message_id TEXT NOT NULL, at INTEGER NOT NULL,
      PRIMARY KEY (consumer, message_id));
  `);
  return { path, transport };
}

const count = (transport: SqliteTransport, sql: string, ...params: unknown[]) =>
  (transport.database.prepare(sql).get(...params) as { n: number }).n;

describe('sqlite transport: processes sharing the file', () => {
  it('two consumer processes of one group handle every message exactly once', { timeout: 60_000 }, async () => {
    const { path, transport } = prepareFile();
    const children = [0, 1].map(() => startChild([path, 'orders', 'billing', 'consume', '10000']));
    try {
      await waitUntil(() => children.every((c) => c.stdout().includes('ready')), 'both consumers to subscribe');
      const messages = Array.from({ length: 200 }, (_, i) =>
        createMessage({ type: 'OrderPlaced', data: { i }, key: `order-${i % 10}` }),
      );
      for (let i = 0; i < messages.length; i += 20) await transport.publish('orders', messages.slice(i, i + 20));
      await waitUntil(
        () =>
          count(transport, 'SELECT COUNT(*) AS n FROM test_effects') >= messages.length &&
          count(transport, 'SELECT COUNT(*) AS n FROM factline_transport_messages WHERE topic = ?', 'orders') === 0,
        'every message handled and acked',
        30_000,
      );
      const deliveries = transport.database
        .prepare('SELECT message_id AS id, COUNT(*) AS n FROM test_deliveries GROUP BY message_id')
        .all() as { id: string; n: number }[];
      assert.equal(deliveries.length, messages.length, 'every message reached a handler');
      assert.deepEqual(
        deliveries.filter((d) => d.n !== 1),
        [],
        'a message was handed to a handler twice',
      );
      const effects = transport.database
        .prepare('SELECT message_id AS id, COUNT(*) AS n FROM test_effects GROUP BY message_id')
        .all() as { id: string; n: number }[];
      assert.deepEqual(effects.map((e) => e.id).sort(), messages.map((m) => m.id).sort());
      assert.ok(
        effects.every((e) => e.n === 1),
        'an effect was applied twice',
      );
      const pids = transport.database.prepare('SELECT DISTINCT pid FROM test_deliveries').all();
      assert.equal(pids.length, 2, 'both processes took part');
    } finally {
      for (const c of children) c.child.kill('SIGTERM');
      await Promise.all(children.map((c) => c.exited));
      await transport.close();
    }
  });

  it('a consumer killed mid-handling: its messages come back after the visibility timeout, applied once', {
    timeout: 60_000,
  }, async () => {
    const { path, transport } = prepareFile();
    const visibility = 1500;
    const victim = startChild([path, 'orders', 'billing', 'victim', String(visibility)]);
    let survivor: Child | undefined;
    try {
      await waitUntil(() => victim.stdout().includes('ready'), 'the victim to subscribe');
      const before = createMessage({ type: 'HangBeforeEffect', data: {}, key: 'a' });
      const afterEffect = createMessage({ type: 'HangAfterEffect', data: {}, key: 'b' });
      await transport.publish('orders', [before, afterEffect]);
      await waitUntil(
        () => victim.stdout().includes(`hanging ${before.id}`) && victim.stdout().includes(`applied ${afterEffect.id}`),
        'the victim to be mid-handling',
        30_000,
      );
      victim.child.kill('SIGKILL');
      await victim.exited;
      survivor = startChild([path, 'orders', 'billing', 'consume', String(visibility)]);
      await waitUntil(() => survivor?.stdout().includes('ready') === true, 'the survivor to subscribe', 30_000);
      const more = Array.from({ length: 10 }, (_, i) => createMessage({ type: 'OrderPlaced', data: { i } }));
      await transport.publish('orders', more);
      await waitUntil(
        () => count(transport, 'SELECT COUNT(*) AS n FROM factline_transport_messages WHERE topic = ?', 'orders') === 0,
        'every message settled',
        30_000,
      );
      const victimPid = victim.child.pid;
      const survivorPid = survivor.child.pid;
      const effects = transport.database
        .prepare('SELECT message_id AS id, pid FROM test_effects ORDER BY rowid')
        .all() as { id: string; pid: number }[];
      const all = [before, afterEffect, ...more].map((m) => m.id).sort();
      assert.deepEqual(effects.map((e) => e.id).sort(), all, 'each effect applied exactly once');
      assert.equal(effects.find((e) => e.id === before.id)?.pid, survivorPid, 'the survivor handled the hung message');
      assert.equal(effects.find((e) => e.id === afterEffect.id)?.pid, victimPid, 'the applied effect is kept');
      const runs = (id: string) =>
        transport.database.prepare('SELECT pid, at FROM test_deliveries WHERE message_id = ? ORDER BY at').all(id) as {
          pid: number;
          at: number;
        }[];
      const beforeRuns = runs(before.id);
      assert.deepEqual(
        beforeRuns.map((r) => r.pid),
        [victimPid, survivorPid],
      );
      const gap = (beforeRuns[1]?.at ?? 0) - (beforeRuns[0]?.at ?? 0);
      assert.ok(gap >= visibility - 50, `it came back after ${gap} ms, before the visibility timeout`);
      // The inbox stops the second run of the message whose effect was already applied.
      assert.deepEqual(
        runs(afterEffect.id).map((r) => r.pid),
        [victimPid],
      );
    } finally {
      victim.child.kill('SIGKILL');
      survivor?.child.kill('SIGTERM');
      await Promise.all([victim.exited, survivor?.exited]);
      await transport.close();
    }
  });
});
