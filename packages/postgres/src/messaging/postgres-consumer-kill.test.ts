import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConsumer, createMessage } from '@factline/core';
import { spawnTestChild, type TestChild, waitUntil } from '@factline/core/testing';
import type pg from 'pg';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { getPostgresInbox, type PostgresInbox } from './postgres-consumer-stores.ts';
import { getPostgresTransport, type PostgresTransport } from './postgres-transport.ts';

const skip = await postgresUnavailable();
const schema = testSchema('consumer_kill');
const s = `"${schema}"`;
const childScript = new URL('./fixtures/consumer-child.ts', import.meta.url).pathname;

interface Child extends TestChild {
  /** The handler runs the child printed ("run <id> <ms>"), in order. */
  runs(): { id: string; at: number }[];
}

function startChild(args: string[]): Child {
  const started = spawnTestChild(childScript, args, { FACTLINE_POSTGRES_URL: postgresUrl });
  const runs = () =>
    [...started.stdout().matchAll(/^run (\S+) (\d+)$/gm)].map((m) => ({ id: m[1] as string, at: Number(m[2]) }));
  return { ...started, runs };
}

describe('postgres consumer: a process killed with SIGKILL mid-handler', { skip }, () => {
  let transport: PostgresTransport;
  let inbox: PostgresInbox;
  const rows = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> =>
    (await transport.pool.query<R>(text, values)).rows;
  const count = async (text: string, values: unknown[] = []) =>
    (await rows<{ n: number }>(text, values))[0]?.n ?? Number.NaN;

  /** How many messages of `group` the transport still holds. */
  const queuedFor = (topic: string, group: string) =>
    count(`SELECT count(*)::int AS n FROM ${s}.transport_messages WHERE topic = $1 AND group_name = $2`, [
      topic,
      group,
    ]);
  /** How many effects `group` applied. */
  const appliedBy = (group: string) =>
    count(`SELECT count(*)::int AS n FROM ${s}.test_effects WHERE consumer = $1`, [group]);
  /** The effects of `group`, in the order applied. */
  const effectsBy = (group: string) =>
    rows<{ message_id: string; pid: number }>(
      `SELECT message_id, pid FROM ${s}.test_effects WHERE consumer = $1 ORDER BY seq`,
      [group],
    );
  /** Waits until `group` applied `total` effects and nothing of it is left in the transport. */
  const appliedAndAcked = (topic: string, group: string, total: number, timeoutMs = 20_000) =>
    waitUntil(
      async () => (await queuedFor(topic, group)) === 0 && (await appliedBy(group)) >= total,
      'every message applied and acked',
      timeoutMs,
      20,
    );

  /**
   * Registers the group, starts the victim process (`mode`: its inbox) and builds the survivor in
   * this process (not started), whose handler records its runs and writes the effect.
   */
  const victimAndSurvivor = async (topic: string, group: string, visibility: number, mode: string) => {
    const registration = transport.subscribe(topic, group);
    // The group exists before anything is published to it (a receive that does not wait registers it).
    await registration.receive(1, 0, new AbortController().signal);
    await registration.close();
    const victimName = `factline-victim-${mode}-${process.pid}`;
    const victim = startChild([schema, topic, group, String(visibility), victimName, mode]);
    const survivorRuns: { id: string; at: number }[] = [];
    const survivor = createConsumer<pg.PoolClient>({
      name: group,
      topic,
      transport,
      inbox,
      concurrency: 4,
      pollMs: 50,
      visibilityTimeoutMs: visibility,
      async handler(message, client) {
        survivorRuns.push({ id: message.id, at: Date.now() });
        await client.query(`INSERT INTO ${s}.test_effects (consumer, message_id, pid) VALUES ($1, $2, $3)`, [
          group,
          message.id,
          process.pid,
        ]);
      },
    });
    return { victim, victimName, survivor, survivorRuns };
  };

  before(async () => {
    transport = await getPostgresTransport({ connectionString: postgresUrl, schema, poolSize: 6, pollIntervalMs: 50 });
    // The survivor's inbox shares the transport's pool: it acks in the handler's transaction.
    inbox = await getPostgresInbox({ pool: transport.pool, schema });
    // No unique constraint: an effect applied twice would show as two rows.
    await transport.pool.query(`CREATE TABLE ${s}.test_effects (
      seq bigserial PRIMARY KEY, consumer text NOT NULL, message_id text NOT NULL, pid integer NOT NULL)`);
  });

  after(async () => {
    await transport?.close();
    await dropSchema(schema);
  });

  // `own`: the victim's inbox has its own pool, so a delivery is acked after the commit, and a kill
  // in between sends the message back. `shared`: the ack commits with the effect, so nothing comes back.
  for (const inboxPool of ['own', 'shared'] as const) {
    it(`the message being handled comes back and is applied once; one whose transaction committed ${
      inboxPool === 'own' ? 'but was never acked comes back as a duplicate' : 'was acked with it'
    } (victim's inbox pool: ${inboxPool})`, { timeout: 60_000 }, async () => {
      const topic = `orders-${inboxPool}`;
      const group = `billing-${inboxPool}`;
      const visibility = 800;
      const { victim, victimName, survivor, survivorRuns } = await victimAndSurvivor(
        topic,
        group,
        visibility,
        inboxPool,
      );
      const queued = (id: string) =>
        count(
          `SELECT count(*)::int AS n FROM ${s}.transport_messages WHERE topic = $1 AND group_name = $2 AND id = $3`,
          [topic, group, id],
        );
      try {
        await waitUntil(() => victim.stdout().includes('ready'), 'the victim to subscribe', 20_000);
        const uncommitted = createMessage({ type: 'HangInTransaction', data: {}, key: 'a' });
        const unacked = createMessage({ type: 'HangBeforeAck', data: {}, key: 'b' });
        const early = Array.from({ length: 5 }, (_, i) => createMessage({ type: 'OrderPlaced', data: { i } }));
        await transport.publish(topic, [uncommitted, unacked, ...early]);
        await waitUntil(
          () =>
            victim.stdout().includes(`hanging ${uncommitted.id}`) && victim.stdout().includes(`applied ${unacked.id}`),
          'the victim to hang inside one transaction and after another one committed',
          20_000,
        );
        // Other keys go on in the victim while one handler hangs: applied and acked (with `own`, the ack
        // follows the commit, and a kill in between would send one of them back too).
        await waitUntil(
          async () =>
            (await count(`SELECT count(*)::int AS n FROM ${s}.test_effects WHERE message_id = ANY($1)`, [
              early.map((m) => m.id),
            ])) === early.length &&
            (await count(
              `SELECT count(*)::int AS n FROM ${s}.transport_messages WHERE topic = $1 AND group_name = $2 AND id = ANY($3)`,
              [topic, group, early.map((m) => m.id)],
            )) === 0,
          'the victim to apply and ack the other messages',
          20_000,
          20,
        );
        // From outside: the hung transaction is open, its effect and mark invisible; the other one committed.
        assert.ok(
          (await count(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'`,
            [victimName],
          )) >= 1,
          'the victim holds an open transaction',
        );
        const effectsOf = (id: string) =>
          rows<{ pid: number }>(`SELECT pid FROM ${s}.test_effects WHERE message_id = $1`, [id]);
        assert.deepEqual(await effectsOf(uncommitted.id), []);
        assert.deepEqual(await effectsOf(unacked.id), [{ pid: victim.child.pid }]);
        assert.equal(await inbox.has(group, uncommitted.id), false);
        assert.equal(await inbox.has(group, unacked.id), true);
        assert.equal(await queued(uncommitted.id), 1);
        assert.equal(
          await queued(unacked.id),
          inboxPool === 'own' ? 1 : 0,
          inboxPool === 'own' ? 'acked separately, after the commit' : 'acked in the transaction of the effect',
        );

        // When the victim's hand-out of the hung message runs out (the database's clock, this host's).
        const [handedOut] = await rows<{ visible_at: Date }>(
          `SELECT visible_at FROM ${s}.transport_messages WHERE topic = $1 AND group_name = $2 AND id = $3`,
          [topic, group, uncommitted.id],
        );
        victim.child.kill('SIGKILL');
        await victim.exited;
        await survivor.start();
        const late = Array.from({ length: 5 }, (_, i) => createMessage({ type: 'OrderPlaced', data: { i } }));
        await transport.publish(topic, late);
        const all = [uncommitted, unacked, ...early, ...late];
        await appliedAndAcked(topic, group, all.length);

        const effects = await effectsBy(group);
        assert.deepEqual(
          effects.map((e) => e.message_id).sort(),
          all.map((m) => m.id).sort(),
          'every effect exactly once',
        );
        const pidOf = (id: string) => effects.find((e) => e.message_id === id)?.pid;
        assert.equal(pidOf(uncommitted.id), process.pid, 'the survivor applied the message whose transaction died');
        assert.equal(pidOf(unacked.id), victim.child.pid, 'the effect committed before the kill is kept');
        for (const m of early) assert.equal(pidOf(m.id), victim.child.pid);
        for (const m of late) assert.equal(pidOf(m.id), process.pid);
        assert.equal(
          await count(`SELECT count(*)::int AS n FROM ${s}.inbox WHERE consumer = $1`, [group]),
          all.length,
          'one inbox mark per message',
        );

        // The unacked message came back and the inbox told it was a duplicate (never run again).
        assert.deepEqual(survivor.stats(), {
          state: 'running',
          errors: 0,
          lastError: undefined,
          handled: 1 + late.length,
          duplicates: inboxPool === 'own' ? 1 : 0,
          retries: 0,
          deadLettered: 0,
          discarded: 0,
        });
        assert.deepEqual(
          survivorRuns.map((r) => r.id).sort(),
          [uncommitted, ...late].map((m) => m.id).sort(),
          'the survivor ran the rolled-back message and the new ones, once each',
        );
        assert.equal(victim.runs().filter((r) => r.id === unacked.id).length, 1);
        const killedRun = victim.runs().find((r) => r.id === uncommitted.id);
        const retriedRun = survivorRuns.find((r) => r.id === uncommitted.id);
        assert.ok(killedRun && retriedRun && handedOut);
        const earlyBy = handedOut.visible_at.getTime() - retriedRun.at;
        assert.ok(earlyBy <= 50, `it came back ${earlyBy} ms before the victim's visibility timeout ran out`);
      } finally {
        victim.child.kill('SIGKILL');
        await victim.exited;
        await survivor.stop();
      }
    });
  }

  it('group commit: a process killed while a group transaction is open loses the whole group; the survivor applies each of its messages once', {
    timeout: 60_000,
  }, async () => {
    const topic = 'orders-grouped';
    const group = 'billing-grouped';
    const visibility = 800;
    const { victim, survivor, survivorRuns } = await victimAndSurvivor(topic, group, visibility, 'grouped');
    try {
      await waitUntil(() => victim.stdout().includes('ready'), 'the victim to subscribe', 20_000);
      // Four keys handed out together: one group; its third run hangs inside the group's transaction.
      const before = [0, 1].map((i) => createMessage({ type: 'OrderPlaced', data: { i }, key: `k${i}` }));
      const hung = createMessage({ type: 'HangInTransaction', data: {}, key: 'k2' });
      const after = createMessage({ type: 'OrderPlaced', data: { i: 3 }, key: 'k3' });
      const all = [...before, hung, after];
      await transport.publish(topic, all);
      await waitUntil(() => victim.stdout().includes(`hanging ${hung.id}`), 'the victim to hang in the group', 20_000);
      const ranInVictim = victim.runs().map((r) => r.id);
      assert.deepEqual(
        ranInVictim,
        [...before, hung].map((m) => m.id),
        'one after the other, in one group',
      );
      // From outside nothing of the group shows: no effect, no inbox mark, every message still queued.
      assert.equal(await appliedBy(group), 0, 'the effects of the runs before the hang are not committed');
      for (const m of all) assert.equal(await inbox.has(group, m.id), false);
      assert.equal(await queuedFor(topic, group), all.length);

      victim.child.kill('SIGKILL');
      await victim.exited;
      await survivor.start();
      await appliedAndAcked(topic, group, all.length);
      const effects = await effectsBy(group);
      assert.deepEqual(
        effects.map((e) => e.message_id).sort(),
        all.map((m) => m.id).sort(),
        'every effect exactly once',
      );
      assert.ok(
        effects.every((e) => e.pid === process.pid),
        'all applied by the survivor',
      );
      assert.deepEqual(survivorRuns.map((r) => r.id).sort(), all.map((m) => m.id).sort(), 'the survivor ran each once');
      assert.equal(survivor.stats().handled, all.length);
      assert.equal(survivor.stats().duplicates, 0);
    } finally {
      victim.child.kill('SIGKILL');
      await victim.exited;
      await survivor.stop();
    }
  });
  it('two consumer processes of one group: per-key order holds across them, every message applied once', {
    timeout: 60_000,
  }, async () => {
    const topic = 'orders-keys';
    const group = 'billing-keys';
    const registration = transport.subscribe(topic, group);
    await registration.receive(1, 0, new AbortController().signal);
    await registration.close();
    const children = [0, 1].map((i) =>
      startChild([schema, topic, group, '10000', `factline-keys-${i}-${process.pid}`, 'shared']),
    );
    try {
      await waitUntil(() => children.every((c) => c.stdout().includes('ready')), 'both consumers', 20_000);
      const messages = Array.from({ length: 300 }, (_, i) =>
        createMessage({ type: 'OrderPlaced', data: { i }, key: `acct-${i % 20}` }),
      );
      for (let i = 0; i < messages.length; i += 30) await transport.publish(topic, messages.slice(i, i + 30));
      const processes = () =>
        count(`SELECT count(DISTINCT pid)::int AS n FROM ${s}.test_effects WHERE consumer = $1`, [group]);
      // A process holds a key while it has the key's messages, so one that keeps up may hold every key the
      // whole time: once both are idle, a round of one message per key goes to whichever looks first, until
      // both took part (at most 50 rounds).
      for (let round = 0; ; round++) {
        await appliedAndAcked(topic, group, messages.length, 45_000);
        if (round === 50 || (await processes()) === 2) break;
        const next = Array.from({ length: 20 }, (_, k) =>
          createMessage({ type: 'OrderPlaced', data: { i: messages.length + k }, key: `acct-${k}` }),
        );
        messages.push(...next);
        await transport.publish(topic, next);
      }
      // Effects in insert order: a key's next message is claimed only once the one before committed.
      const effects = await effectsBy(group);
      assert.deepEqual(
        effects.map((e) => e.message_id).sort(),
        messages.map((m) => m.id).sort(),
        'each message applied once',
      );
      const byId = new Map(messages.map((m) => [m.id, m]));
      const last = new Map<string, number>();
      const outOfOrder: string[] = [];
      for (const { message_id } of effects) {
        const message = byId.get(message_id) as (typeof messages)[number];
        const i = (message.data as { i: number }).i;
        if ((last.get(message.key) ?? -1) > i) outOfOrder.push(`${message.key}:${i}`);
        last.set(message.key, i);
      }
      assert.deepEqual(outOfOrder, [], `${outOfOrder.length} of ${messages.length} applied out of key order`);
      assert.equal(new Set(effects.map((e) => e.pid)).size, 2, 'both processes took part');
    } finally {
      for (const c of children) c.child.kill('SIGTERM');
      await Promise.all(children.map((c) => c.exited));
    }
  });
});
