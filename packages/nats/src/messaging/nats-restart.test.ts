import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnTestChild, type TestChild, waitUntil } from '@factline/core/testing';
import { getSqliteInbox, getSqliteOutbox, openSqliteDatabase, startSqliteOutboxRelay } from '@factline/sqlite';
import { startPrivateServer } from '../fixtures/private-server.ts';
import { testApplication } from '../fixtures/server.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

// A server restart mid-run, on a private nats-server (its own port and store directory): a producer
// writing to the SQLite outbox, its relay publishing to JetStream, three consumer processes; the server
// stops and starts again.
const server = await startPrivateServer({ jetstream: true });
const skip = 'reason' in server ? `no private nats-server: ${server.reason}` : false;
if (skip) console.log(`# skipped: ${skip}`);
const childScript = new URL('./fixtures/consumer-child.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'factline-nats-restart-'));
const children: TestChild[] = [];
const transports: NatsTransport[] = [];
const stops: (() => Promise<void>)[] = [];

after(async () => {
  for (const child of children) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited.catch(() => undefined)));
  for (const stop of stops) await stop();
  await Promise.all(transports.map((t) => t.close()));
  if (!('reason' in server)) await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('nats: the server restarts mid-run', { skip }, () => {
  it('outbox relay and three consumer processes ride it out: every message applied once, per-key order held', async () => {
    if ('reason' in server) return;
    const path = join(dir, 'restart.db');
    const db = openSqliteDatabase(path);
    getSqliteInbox({ database: db });
    db.exec(
      'CREATE TABLE effects (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT, key TEXT, n INTEGER, pid INTEGER)',
    );
    const application = testApplication('restart');
    const partitions = 3;
    const relayErrors: unknown[] = [];
    const transport = await getNatsTransport({ url: server.url, application, partitions, reconnectWaitMs: 100 });
    transports.push(transport);
    await transport.declareSubscription('counts', 'counter');
    const outbox = getSqliteOutbox({ database: db });
    const relay = startSqliteOutboxRelay(outbox, transport, {
      lease: false,
      pollMs: 20,
      onError: (error) => relayErrors.push(error),
    });
    stops.push(() => relay.stop());
    const started = [0, 1, 2].map(() => {
      const child = spawnTestChild(childScript, [
        server.url,
        application,
        'counts',
        'counter',
        path,
        String(partitions),
        '1',
      ]);
      children.push(child);
      return child;
    });
    await waitUntil(() => started.every((c) => c.stdout().includes('ready')), 'three consumers ready', 60_000);

    const keys = 12;
    const perKey = 30;
    let n = 0;
    const produce = (rounds: number) => {
      for (let r = 0; r < rounds; r++, n++) {
        const round = n;
        db.transaction(() =>
          outbox.enqueue(
            db,
            'counts',
            Array.from({ length: keys }, (_, k) => ({ type: 'Counted', key: `key-${k}`, data: { n: round } })),
          ),
        )();
      }
    };
    const applied = db.prepare<[], { n: number }>('SELECT count(DISTINCT message_id) AS n FROM effects');
    produce(10);
    await waitUntil(() => (applied.get()?.n ?? 0) >= 60, 'a first part applied', 60_000);
    await server.stopServer();
    // Written while the server is down: the relay holds the rows until it can publish them.
    produce(10);
    await waitUntil(() => relayErrors.length > 0, 'the relay to meet the outage', 30_000);
    await server.startServer();
    produce(perKey - 20);
    const total = keys * perKey;
    await waitUntil(() => (applied.get()?.n ?? 0) >= total, 'every message applied after the restart', 120_000);

    const rows = db
      .prepare<[], { message_id: string; key: string; n: number }>(
        'SELECT message_id, key, n FROM effects ORDER BY seq',
      )
      .all();
    assert.equal(rows.length, total, 'each message applied once');
    for (let k = 0; k < keys; k++) {
      assert.deepEqual(
        rows.filter((r) => r.key === `key-${k}`).map((r) => r.n),
        Array.from({ length: perKey }, (_, i) => i),
        `key-${k} in order`,
      );
    }
    await relay.stop();
    for (const child of started) child.child.kill('SIGTERM');
    await Promise.all(started.map((c) => c.exited));
    db.close();
  });
});
