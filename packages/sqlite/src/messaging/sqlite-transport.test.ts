import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMessage, type Message } from '@factline/core';
import { spawnTestChild, type TestChild, testTransportConformance, waitUntil } from '@factline/core/testing';
import { getSqliteInbox, getSqliteTransport, openSqliteDatabase, type SqliteTransport } from '../index.ts';
import { migrate } from '../migrations.ts';
import { CLAIM_SQL } from './sqlite-claim.ts';
import { transportMigrations } from './sqlite-transport-migrations.ts';

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

interface Child extends TestChild {
  /** The handler runs the child printed ("run <id> <ms>"), in order. */
  runs(): { id: string; at: number }[];
}

function startChild(args: string[]): Child {
  const started = spawnTestChild(childScript, args);
  const runs = () =>
    [...started.stdout().matchAll(/^run (\S+) (\d+)$/gm)].map((m) => ({ id: m[1] as string, at: Number(m[2]) }));
  return { ...started, runs };
}

function prepareFile(): { path: string; transport: SqliteTransport } {
  const path = file();
  const transport = getSqliteTransport({ path, pollIntervalMs: 20 });
  transport.database.exec('CREATE TABLE test_effects (message_id TEXT NOT NULL, pid INTEGER NOT NULL)');
  // The children's inbox (factline_inbox), created before they start.
  getSqliteInbox({ database: transport.database });
  return { path, transport };
}

const count = (transport: SqliteTransport, sql: string, ...params: unknown[]) =>
  (transport.database.prepare(sql).get(...params) as { n: number }).n;

/**
 * A process holds a key while it has the key's messages, so one that keeps up may hold every key
 * the whole time. Once both processes are idle, a round (one message per key, appended to
 * `messages`) goes to whichever looks first: rounds go on until both took part (at most 50).
 */
async function roundsUntilBothTookPart(transport: SqliteTransport, messages: Message[], prefix: string, keys: number) {
  const processes = () => count(transport, 'SELECT COUNT(DISTINCT pid) AS n FROM test_effects WHERE pid IS NOT NULL');
  const handled = () => count(transport, 'SELECT COUNT(*) AS n FROM test_effects');
  for (let round = 0; round < 50; round++) {
    await waitUntil(() => handled() >= messages.length, 'every message so far handled', 45_000);
    if (processes() === 2) return;
    const next = Array.from({ length: keys }, (_, k) =>
      createMessage({ type: 'OrderPlaced', data: { i: messages.length + k }, key: `${prefix}-${k}` }),
    );
    messages.push(...next);
    await transport.publish('orders', next);
  }
}

/** The stats a child printed when it stopped. */
const statsOf = (child: Child) => {
  const line = /^stats (.*)$/m.exec(child.stdout());
  return line ? (JSON.parse(line[1] as string) as Record<string, number>) : undefined;
};

describe('sqlite transport: the queue table', () => {
  it('a claim walks the oldest rows of the group in seq order by the (topic, group_name) index, with no sort of the queue, however deep', async () => {
    const transport = getSqliteTransport({ path: file() });
    try {
      const indexes = transport.database
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'factline_transport_messages'")
        .all() as { name: string }[];
      // The trace's index on the message's correlation id is never touched by a hand-out (it reads only `message`).
      assert.deepEqual(
        indexes.map((i) => i.name),
        [
          'factline_transport_messages_queue',
          'factline_transport_messages_correlation',
          'factline_transport_messages_key',
        ],
      );
      const plan = transport.database
        .prepare(`EXPLAIN QUERY PLAN ${CLAIM_SQL}`)
        .all({ topic: 'orders', group: 'billing', at: Date.now(), max: 100, window: 1600 }) as { detail: string }[];
      const steps = plan.map((step) => step.detail);
      assert.ok(
        steps.includes(
          'SEARCH factline_transport_messages USING INDEX factline_transport_messages_queue (topic=? AND group_name=?)',
        ),
        steps.join('\n'),
      );
      assert.ok(steps.includes('SEARCH m USING INTEGER PRIMARY KEY (rowid=?)'), steps.join('\n'));
      assert.ok(!steps.some((step) => /^SCAN factline_transport_messages/.test(step)), steps.join('\n'));
    } finally {
      await transport.close();
    }
  });

  it('migration 2 on a file written by version 1: the waiting messages are kept and delivered once', async () => {
    const path = file();
    const db = openSqliteDatabase(path);
    migrate(db, 'transport', transportMigrations.slice(0, 1));
    const waiting = Array.from({ length: 3 }, (_, i) => createMessage({ type: 'OrderPlaced', data: { i } }));
    db.prepare(
      "INSERT INTO factline_transport_groups (topic, group_name, created_at) VALUES ('orders', 'billing', 0)",
    ).run();
    for (const message of waiting) {
      db.prepare(
        `INSERT INTO factline_transport_messages (topic, group_name, message_id, message, key, visible_at)
         VALUES ('orders', 'billing', ?, ?, ?, 0)`,
      ).run(message.id, JSON.stringify(message), message.key);
    }
    db.close();
    const transport = getSqliteTransport({ path });
    try {
      const subscription = transport.subscribe('orders', 'billing');
      const received = await subscription.receive(10, 0, new AbortController().signal);
      assert.deepEqual(
        received.map((d) => d.message.id),
        waiting.map((m) => m.id),
      );
      for (const delivery of received) await delivery.ack();
      assert.deepEqual(await subscription.receive(10, 0, new AbortController().signal), []);
      await subscription.close();
    } finally {
      await transport.close();
    }
  });
});

describe('sqlite transport: a transaction begun by hand on the shared connection', () => {
  it('no claim joins it: a rollback cannot undo a hand-out and let a second subscriber take the same key', async () => {
    const db = openSqliteDatabase(file());
    const transport = getSqliteTransport({ database: db, pollIntervalMs: 10 });
    try {
      await transport.declareSubscription('orders', 'billing');
      await transport.publish('orders', [createMessage({ type: 'Placed', key: 'o-1', data: { n: 1 } })]);
      const first = transport.subscribe('orders', 'billing');
      const second = transport.subscribe('orders', 'billing');
      const never = new AbortController().signal;
      // Begun by hand and left open across an await (another part of the application).
      db.exec('BEGIN');
      assert.deepEqual(await first.receive(1, 50, never), [], 'nothing handed out inside the foreign transaction');
      db.exec('ROLLBACK');
      const [held] = await first.receive(1, 1000, never);
      assert.ok(held, 'handed out once the transaction ended');
      assert.equal((held.message.data as { n: number }).n, 1);
      assert.deepEqual(await second.receive(1, 50, never), [], 'the key stays with its holder');
      await held.ack();
      await first.close();
      await second.close();
    } finally {
      await transport.close();
      db.close();
    }
  });
});

describe('sqlite transport: processes sharing the file', () => {
  it('two consumer processes of one group handle every message exactly once', { timeout: 60_000 }, async () => {
    const { path, transport } = prepareFile();
    // Each delivery waits 30 ms after its handler (outside any transaction): a process running its
    // lanes' transactions back to back (synchronous = FULL: an fsync each) can otherwise hold the
    // write lock so steadily that the other's busy handler never gets it before every message is gone.
    const children = [0, 1].map(() => startChild([path, 'orders', 'billing', 'consume', '10000', 'shared', '30']));
    try {
      await waitUntil(() => children.every((c) => c.stdout().includes('ready')), 'both consumers to subscribe');
      const messages = Array.from({ length: 200 }, (_, i) =>
        createMessage({ type: 'OrderPlaced', data: { i }, key: `order-${i % 10}` }),
      );
      for (let i = 0; i < messages.length; i += 20) await transport.publish('orders', messages.slice(i, i + 20));
      await roundsUntilBothTookPart(transport, messages, 'order', 10);
      await waitUntil(
        () =>
          count(transport, 'SELECT COUNT(*) AS n FROM test_effects') >= messages.length &&
          count(transport, 'SELECT COUNT(*) AS n FROM factline_transport_messages WHERE topic = ?', 'orders') === 0,
        'every message handled and acked',
        30_000,
      );
      // Stopped first, so their output is read to the end.
      for (const c of children) c.child.kill('SIGTERM');
      await Promise.all(children.map((c) => c.exited));
      const runs = children.flatMap((c) => c.runs().map((run) => run.id));
      assert.deepEqual([...new Set(runs)].sort(), messages.map((m) => m.id).sort(), 'every message reached a handler');
      assert.equal(runs.length, messages.length, 'a message was handed to a handler twice');
      const effects = transport.database
        .prepare('SELECT message_id AS id, COUNT(*) AS n FROM test_effects GROUP BY message_id')
        .all() as { id: string; n: number }[];
      assert.deepEqual(effects.map((e) => e.id).sort(), messages.map((m) => m.id).sort());
      assert.ok(
        effects.every((e) => e.n === 1),
        'an effect was applied twice',
      );
      assert.equal(
        count(transport, 'SELECT COUNT(*) AS n FROM factline_inbox WHERE consumer = ?', 'billing'),
        messages.length,
        'one inbox mark per message',
      );
      const pids = transport.database.prepare('SELECT DISTINCT pid FROM test_effects').all();
      assert.equal(pids.length, 2, 'both processes took part');
    } finally {
      for (const c of children) c.child.kill('SIGTERM');
      await Promise.all(children.map((c) => c.exited));
      await transport.close();
    }
  });

  it('two consumer processes of one group: per-key order holds across them, every message applied once', {
    timeout: 60_000,
  }, async () => {
    const { path, transport } = prepareFile();
    // The inbox on a connection of its own: a delivery is acked a step after its commit (5 ms later),
    // so each process holds keys a while, with later messages of those keys waiting in the table.
    const children = [0, 1].map(() => startChild([path, 'orders', 'billing', 'consume', '10000', 'own', '5']));
    try {
      await waitUntil(() => children.every((c) => c.stdout().includes('ready')), 'both consumers to subscribe');
      const messages = Array.from({ length: 300 }, (_, i) =>
        createMessage({ type: 'OrderPlaced', data: { i }, key: `acct-${i % 20}` }),
      );
      for (let i = 0; i < messages.length; i += 30) await transport.publish('orders', messages.slice(i, i + 30));
      await roundsUntilBothTookPart(transport, messages, 'acct', 20);
      await waitUntil(
        () =>
          count(transport, 'SELECT COUNT(*) AS n FROM test_effects') >= messages.length &&
          count(transport, 'SELECT COUNT(*) AS n FROM factline_transport_messages WHERE topic = ?', 'orders') === 0,
        'every message handled and acked',
        45_000,
      );
      for (const c of children) c.child.kill('SIGTERM');
      await Promise.all(children.map((c) => c.exited));
      // Effects in commit order (rowid): per key, the messages' publish order.
      const applied = transport.database
        .prepare('SELECT message_id AS id, pid FROM test_effects ORDER BY rowid')
        .all() as { id: string; pid: number }[];
      assert.deepEqual(applied.map((e) => e.id).sort(), messages.map((m) => m.id).sort(), 'each message applied once');
      const byId = new Map(messages.map((m) => [m.id, m]));
      const last = new Map<string, number>();
      const outOfOrder: string[] = [];
      for (const { id } of applied) {
        const message = byId.get(id) as (typeof messages)[number];
        const i = (message.data as { i: number }).i;
        if ((last.get(message.key) ?? -1) > i) outOfOrder.push(`${message.key}:${i}`);
        last.set(message.key, i);
      }
      assert.deepEqual(outOfOrder, [], `${outOfOrder.length} of ${messages.length} applied out of key order`);
      assert.equal(new Set(applied.map((e) => e.pid)).size, 2, 'both processes took part');
    } finally {
      for (const c of children) c.child.kill('SIGTERM');
      await Promise.all(children.map((c) => c.exited));
      await transport.close();
    }
  });

  // `own`: the victim's inbox has a connection of its own, so a delivery is acked after the commit,
  // and a kill in between sends the message back. `shared`: the ack commits with the effect.
  for (const inboxConnection of ['own', 'shared'] as const) {
    it(`a consumer killed mid-handling: its message comes back after the visibility timeout, applied once; one whose transaction committed ${
      inboxConnection === 'own' ? 'but was never acked comes back as a duplicate' : 'was acked with it'
    } (victim's inbox connection: ${inboxConnection})`, { timeout: 60_000 }, async () => {
      const { path, transport } = prepareFile();
      const visibility = 1500;
      const victim = startChild([path, 'orders', 'billing', 'victim', String(visibility), inboxConnection]);
      let survivor: Child | undefined;
      const queued = (id: string) =>
        count(transport, 'SELECT COUNT(*) AS n FROM factline_transport_messages WHERE message_id = ?', id);
      try {
        await waitUntil(() => victim.stdout().includes('ready'), 'the victim to subscribe');
        const uncommitted = createMessage({ type: 'HangBeforeCommit', data: {}, key: 'a' });
        const unacked = createMessage({ type: 'HangBeforeAck', data: {}, key: 'b' });
        // One after the other: the victim's hang inside the transaction blocks its whole thread.
        await transport.publish('orders', [unacked]);
        await waitUntil(() => victim.stdout().includes(`applied ${unacked.id}`), 'the victim to commit', 30_000);
        assert.equal(
          queued(unacked.id),
          inboxConnection === 'own' ? 1 : 0,
          inboxConnection === 'own' ? 'acked separately, after the commit' : 'acked in the transaction of the effect',
        );
        await transport.publish('orders', [uncommitted]);
        await waitUntil(
          () => victim.stdout().includes(`hanging ${uncommitted.id}`),
          'the victim to hang mid-handler',
          30_000,
        );
        // When the victim's hand-out of the hung message runs out.
        const handedOut = transport.database
          .prepare('SELECT visible_at AS at FROM factline_transport_messages WHERE message_id = ?')
          .get(uncommitted.id) as { at: number };
        victim.child.kill('SIGKILL');
        await victim.exited;
        // The effect written in the transaction the kill ended is gone with it.
        assert.equal(
          count(transport, 'SELECT COUNT(*) AS n FROM test_effects WHERE message_id = ?', uncommitted.id),
          0,
        );
        assert.equal(queued(uncommitted.id), 1);
        survivor = startChild([path, 'orders', 'billing', 'consume', String(visibility), 'shared']);
        await waitUntil(() => survivor?.stdout().includes('ready') === true, 'the survivor to subscribe', 30_000);
        const more = Array.from({ length: 10 }, (_, i) => createMessage({ type: 'OrderPlaced', data: { i } }));
        await transport.publish('orders', more);
        await waitUntil(
          () =>
            count(transport, 'SELECT COUNT(*) AS n FROM factline_transport_messages WHERE topic = ?', 'orders') === 0,
          'every message settled',
          30_000,
        );
        const victimPid = victim.child.pid;
        const survivorPid = survivor.child.pid;
        const effects = transport.database
          .prepare('SELECT message_id AS id, pid FROM test_effects ORDER BY rowid')
          .all() as { id: string; pid: number }[];
        const all = [uncommitted, unacked, ...more].map((m) => m.id).sort();
        assert.deepEqual(effects.map((e) => e.id).sort(), all, 'each effect applied exactly once');
        assert.equal(
          effects.find((e) => e.id === uncommitted.id)?.pid,
          survivorPid,
          'the survivor applied the message whose transaction died',
        );
        assert.equal(effects.find((e) => e.id === unacked.id)?.pid, victimPid, 'the committed effect is kept');
        assert.equal(
          count(transport, 'SELECT COUNT(*) AS n FROM factline_inbox WHERE consumer = ?', 'billing'),
          all.length,
          'one inbox mark per message',
        );
        // Stopped first, so its output is read to the end (and its stats printed).
        survivor.child.kill('SIGTERM');
        await survivor.exited;
        const runsOf = (child: Child, id: string) => child.runs().filter((r) => r.id === id);
        const [killedRun] = runsOf(victim, uncommitted.id);
        const [retriedRun] = runsOf(survivor, uncommitted.id);
        assert.ok(killedRun && retriedRun, 'the hung message ran in the victim, then in the survivor');
        const earlyBy = handedOut.at - retriedRun.at;
        assert.ok(earlyBy <= 50, `it came back ${earlyBy} ms before the victim's visibility timeout ran out`);
        // The inbox mark, committed with the effect, stops a second run of the unacked message.
        assert.equal(runsOf(victim, unacked.id).length, 1);
        assert.equal(runsOf(survivor, unacked.id).length, 0);
        assert.deepEqual(
          survivor
            .runs()
            .map((r) => r.id)
            .sort(),
          [uncommitted, ...more].map((m) => m.id).sort(),
          'the survivor ran every other message once',
        );
        assert.deepEqual(statsOf(survivor), {
          state: 'stopped',
          errors: 0,
          handled: 1 + more.length,
          duplicates: inboxConnection === 'own' ? 1 : 0,
          retries: 0,
          deadLettered: 0,
          discarded: 0,
        });
      } finally {
        victim.child.kill('SIGKILL');
        survivor?.child.kill('SIGTERM');
        await Promise.all([victim.exited, survivor?.exited]);
        await transport.close();
      }
    });
  }
});
