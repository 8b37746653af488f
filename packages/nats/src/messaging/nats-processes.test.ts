import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMessage, type Message } from '@factline/core';
import { spawnTestChild, type TestChild, waitUntil } from '@factline/core/testing';
import { getSqliteInbox, openSqliteDatabase } from '@factline/sqlite';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const childScript = new URL('./fixtures/consumer-child.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'factline-nats-processes-'));
const created: NatsTransport[] = [];
const applications: string[] = [];
const children: TestChild[] = [];

after(async () => {
  for (const child of children) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited.catch(() => undefined)));
  await Promise.all(created.map((t) => t.close()));
  if (!skip) await removeStreams(applications);
  rmSync(dir, { recursive: true, force: true });
});

/** `keys` keys, `perKey` messages each, interleaved: n counts up per key. */
const messages = (keys: number, perKey: number): Message[] => {
  const out: Message[] = [];
  for (let n = 0; n < perKey; n++) {
    for (let k = 0; k < keys; k++) out.push(createMessage({ type: 'Counted', key: `key-${k}`, data: { n } }));
  }
  return out;
};

/** The partitions a child said it holds last. */
const heldBy = (child: TestChild) => {
  const lines = [...child.stdout().matchAll(/^held (.*)$/gm)];
  const last = lines[lines.length - 1]?.[1] ?? '';
  return last === '' ? [] : last.split(',').map(Number);
};

describe('nats: consumer processes of one group', { skip }, () => {
  it('three processes share the partitions, one SIGKILLed while it holds unacknowledged messages: the others get them after the ack wait; every message applied once, per-key order held', async () => {
    const path = join(dir, 'kill.db');
    const db = openSqliteDatabase(path);
    // The inbox table, made once here (the children find it), and the effects.
    getSqliteInbox({ database: db });
    db.exec(
      'CREATE TABLE effects (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT, key TEXT, n INTEGER, pid INTEGER)',
    );
    const application = testApplication('kill');
    applications.push(application);
    const partitions = 6;
    const transport = await getNatsTransport({ url: natsUrl, application, partitions });
    created.push(transport);
    await transport.declareSubscription('counts', 'counter');
    const start = () => {
      const child = spawnTestChild(childScript, [
        natsUrl,
        application,
        'counts',
        'counter',
        path,
        String(partitions),
        '3',
      ]);
      children.push(child);
      return child;
    };
    const started = [start(), start(), start()];
    const failed = Promise.race(started.map((c) => c.exited.then(() => assert.fail('a consumer process ended'))));
    failed.catch(() => undefined);
    await Promise.race([
      failed,
      waitUntil(() => started.every((c) => c.stdout().includes('ready')), 'three consumers ready', 60_000),
    ]);
    // Each holds a share: no partition twice, all of them held.
    await Promise.race([
      failed,
      waitUntil(
        () => {
          const all = started.flatMap(heldBy);
          return (
            started.every((c) => heldBy(c).length > 0) && new Set(all).size === partitions && all.length === partitions
          );
        },
        'the partitions shared among the three',
        30_000,
      ),
    ]);

    const published = messages(24, 20);
    for (let i = 0; i < published.length; i += 60) await transport.publish('counts', published.slice(i, i + 60));
    const applied = db.prepare<[], { n: number }>('SELECT count(DISTINCT message_id) AS n FROM effects');
    await waitUntil(() => (applied.get()?.n ?? 0) >= 60, 'a first part applied', 60_000);

    // The victim: a process that ran handlers (it holds partitions and prefetched messages).
    const victim = started.find((c) => c.stdout().includes('run ')) as TestChild;
    victim.child.kill('SIGKILL');
    await victim.exited;
    const victimPid = victim.child.pid;
    const appliedAtKill = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM effects').get()?.n ?? 0;
    const victimRuns = [...victim.stdout().matchAll(/^run (\S+)$/gm)].map((m) => m[1]);

    await waitUntil(() => (applied.get()?.n ?? 0) >= published.length, 'every message applied', 90_000).catch(
      (error) => {
        for (const c of started)
          console.log(
            c.child.pid,
            c
              .stdout()
              .split('\n')
              .filter((l) => !l.startsWith('run '))
              .join(' | '),
          );
        console.log('applied', applied.get()?.n);
        throw error;
      },
    );
    const rows = db
      .prepare<[], { message_id: string; key: string; n: number; pid: number }>(
        'SELECT message_id, key, n, pid FROM effects ORDER BY seq',
      )
      .all();
    assert.equal(rows.length, published.length, 'each message applied once (the inbox turned duplicates away)');
    assert.equal(new Set(rows.map((r) => r.message_id)).size, published.length);
    for (let k = 0; k < 24; k++) {
      assert.deepEqual(
        rows.filter((r) => r.key === `key-${k}`).map((r) => r.n),
        Array.from({ length: 20 }, (_, n) => n),
        `key-${k} applied in publish order`,
      );
    }
    const later = rows.slice(appliedAtKill);
    assert.ok(later.length > 0 && later.every((r) => r.pid !== victimPid), 'the survivors applied the rest');
    const survivors = started.filter((c) => c !== victim);
    await waitUntil(
      () => survivors.flatMap(heldBy).length === partitions,
      "the survivors took the victim's partitions",
      30_000,
    );
    const appliedByVictim = new Set(rows.filter((r) => r.pid === victimPid).map((r) => r.message_id));
    assert.ok(
      victimRuns.some((id) => !appliedByVictim.has(id as string)) || later.length > 0,
      'the victim held messages it had not applied',
    );
    for (const child of survivors) child.child.kill('SIGTERM');
    await Promise.all(started.map((c) => c.exited));
    db.close();
  });
});
