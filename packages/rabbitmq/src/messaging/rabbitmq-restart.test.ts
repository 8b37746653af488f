import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnTestChild, type TestChild, waitUntil } from '@factline/core/testing';
import { getSqliteInbox, getSqliteOutbox, openSqliteDatabase, startSqliteOutboxRelay } from '@factline/sqlite';
import { startPrivateNode } from '../fixtures/private-node.ts';
import { testApplication } from '../fixtures/server.ts';
import { getRabbitTransport, type RabbitTransport } from './rabbitmq-transport.ts';

// A broker restart mid-run, on a private node: a producer writing to the SQLite outbox, its relay
// publishing to RabbitMQ, three consumer processes; the broker application stops and starts again.
const node = await startPrivateNode();
const skip = 'reason' in node ? `no private RabbitMQ node: ${node.reason}` : false;
if (skip) console.log(`# skipped: ${skip}`);
const childScript = new URL('./fixtures/consumer-child.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'factline-rabbit-restart-'));
const children: TestChild[] = [];
const transports: RabbitTransport[] = [];
const stops: (() => Promise<void>)[] = [];

after(async () => {
  for (const child of children) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited.catch(() => undefined)));
  for (const stop of stops) await stop();
  await Promise.all(transports.map((t) => t.close()));
  if (!('reason' in node)) await node.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('rabbitmq: the broker restarts mid-run', { skip }, () => {
  it('outbox relay and three consumer processes ride it out: every message applied once, per-key order held', async () => {
    if ('reason' in node) return;
    const path = join(dir, 'restart.db');
    const db = openSqliteDatabase(path);
    getSqliteInbox({ database: db });
    db.exec(
      'CREATE TABLE effects (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT, key TEXT, n INTEGER, pid INTEGER)',
    );
    const application = testApplication('restart');
    const partitions = 3;
    const relayErrors: unknown[] = [];
    const transport = await getRabbitTransport({
      url: node.url,
      application,
      partitions,
      reconnectMinMs: 100,
      reconnectMaxMs: 500,
    });
    transports.push(transport);
    const outbox = getSqliteOutbox({ database: db });
    const relay = startSqliteOutboxRelay(outbox, transport, {
      lease: false,
      pollMs: 20,
      onError: (error) => relayErrors.push(error),
    });
    stops.push(() => relay.stop());
    const started = [0, 1, 2].map(() => {
      const child = spawnTestChild(childScript, [
        node.url,
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
    await node.stopApp();
    // Written while the broker is down: the relay holds the rows until it can publish them.
    produce(10);
    await waitUntil(() => relayErrors.length > 0, 'the relay to meet the outage', 30_000);
    await node.startApp();
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
