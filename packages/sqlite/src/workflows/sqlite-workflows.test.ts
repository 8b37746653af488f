import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMessage, createWorkflowHandler, createWorkflowTimers } from '@factline/core';
import { settlesWithin, spawnTestChild, waitUntil } from '@factline/core/testing';
import { job } from '../../../core/src/workflows/fixtures/job-workflow.ts';
import {
  getSqliteEventStore,
  getSqliteTimerStore,
  getSqliteTransport,
  openSqliteDatabase,
  sqliteTimerProjection,
  startSqliteWorkflowTimers,
} from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-workflows-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const childScript = new URL('./fixtures/workflow-child.ts', import.meta.url).pathname;

function prepareFile(): string {
  const path = join(dir, `workflows-${++files}.db`);
  const db = openSqliteDatabase(path);
  db.exec('CREATE TABLE test_effects (message_id TEXT NOT NULL, type TEXT NOT NULL, pid INTEGER NOT NULL)');
  db.close();
  return path;
}

function startChild(path: string, crash: 'none' | 'after-decision' | 'before-timer-record') {
  const child = spawnTestChild(childScript, [path, crash]);
  return { ...child, ready: waitUntil(() => child.stdout().includes('ready'), `child (${crash}) ready`, 30_000) };
}

async function publishStart(path: string, id: string, fireAt: number) {
  const transport = getSqliteTransport({ path });
  try {
    await transport.publish('jobs', [createMessage({ type: 'Start', data: { id, fireAt }, key: id })]);
  } finally {
    await transport.close();
  }
}

/** What the file holds: each step's effects, the instance's inputs, the pending timers. */
async function inspect(path: string, id: string) {
  const db = openSqliteDatabase(path);
  const store = getSqliteEventStore({ path });
  try {
    const effects = db.prepare('SELECT type, pid FROM test_effects ORDER BY rowid').all() as { type: string }[];
    const { events } = await store.readStream(`job-${id}`);
    const inputs = events
      .filter((e) => e.type === '$workflow.input')
      .map((e) => (e.data as { message: { type: string } }).message.type);
    const pending = await getSqliteTimerStore({ database: store.database }).pendingCount();
    return { effects: effects.map((e) => e.type), inputs, types: events.map((e) => e.type), pending };
  } finally {
    await store.close();
    db.close();
  }
}

const stopped = async (child: ReturnType<typeof startChild>) => {
  child.child.kill('SIGTERM');
  await child.exited;
};

describe('sqlite workflows: kill -9 and restarts', { timeout: 120_000 }, () => {
  it('resumes after a kill between a decision and its outgoing messages: each step runs once', async () => {
    const path = prepareFile();
    const victim = startChild(path, 'after-decision');
    await victim.ready;
    await publishStart(path, 'j1', Date.now() + 1500);
    await settlesWithin(victim.exited, 30_000, 'the victim killed itself');
    assert.match(victim.stdout(), /crashing after a decision/);
    const crashed = await inspect(path, 'j1');
    assert.deepEqual(crashed.inputs, ['Start'], 'the decision committed');
    assert.deepEqual(crashed.effects, [], 'nothing was published before the kill');
    assert.equal(crashed.pending, 1, 'the timer was scheduled with the decision');

    const survivor = startChild(path, 'none');
    try {
      await survivor.ready;
      await waitUntil(async () => (await inspect(path, 'j1')).effects.length === 2, 'both steps applied', 30_000);
      await waitUntil(
        async () => (await inspect(path, 'j1')).types.at(-1) === '$workflow.completed',
        'the instance completed',
        30_000,
      );
    } finally {
      await stopped(survivor);
    }
    const done = await inspect(path, 'j1');
    assert.deepEqual(done.effects, ['Step1', 'Step2']);
    assert.deepEqual(done.inputs, ['Start', 'Fire'], 'the redelivered Start was not decided again');
    assert.equal(done.pending, 0);
  });

  it('resumes after a kill between a timer firing and its recording: the timer fires once, later', async () => {
    const path = prepareFile();
    const victim = startChild(path, 'before-timer-record');
    await victim.ready;
    await publishStart(path, 'j2', Date.now() + 300);
    await settlesWithin(victim.exited, 30_000, 'the victim killed itself');
    assert.match(victim.stdout(), /crashing before recording a fired timer/);
    const crashed = await inspect(path, 'j2');
    assert.deepEqual(crashed.inputs, ['Start']);
    assert.equal(crashed.pending, 1, 'the timer is still pending');

    const survivor = startChild(path, 'none');
    try {
      await survivor.ready;
      await waitUntil(async () => (await inspect(path, 'j2')).effects.includes('Step2'), 'the timer’s step', 30_000);
    } finally {
      await stopped(survivor);
    }
    const done = await inspect(path, 'j2');
    assert.deepEqual(done.effects.sort(), ['Step1', 'Step2']);
    assert.deepEqual(done.inputs, ['Start', 'Fire']);
    assert.equal(done.pending, 0);
  });

  it('fails the timer poller over to a standby process when its holder is killed', async () => {
    const path = prepareFile();
    const holder = startChild(path, 'none');
    await holder.ready;
    const store = getSqliteEventStore({ path, busyTimeoutMs: 10_000, inlineProjections: [sqliteTimerProjection()] });
    const handler = createWorkflowHandler(job, { store });
    const standby = await startSqliteWorkflowTimers(store, { handlers: [handler], pollMs: 50, leaseTtlMs: 1000 });
    try {
      assert.equal(standby.stats().held, false, 'the first process holds the lease');
      await publishStart(path, 'j3', Date.now() + 1500);
      await waitUntil(async () => (await inspect(path, 'j3')).inputs.length === 1, 'the start decided', 30_000);
      holder.child.kill('SIGKILL');
      await holder.exited;
      await waitUntil(() => standby.stats().fired === 1, 'the standby fired the timer', 30_000);
      assert.equal(standby.stats().held, true);
      assert.deepEqual((await inspect(path, 'j3')).inputs, ['Start', 'Fire']);
    } finally {
      await standby.stop();
      await store.close();
    }
  });

  it('fires 10,000 timers pending across a restart, each once', async () => {
    const path = prepareFile();
    const count = 10_000;
    const first = getSqliteEventStore({ path, inlineProjections: [sqliteTimerProjection()] });
    const scheduling = createWorkflowHandler(job, { store: first });
    const dueAt = Date.now() + 60_000;
    for (let from = 0; from < count; from += 500) {
      const chunk = Array.from({ length: Math.min(500, count - from) }, (_, i) =>
        scheduling.handle(createMessage({ type: 'Start', data: { id: `m${from + i}`, fireAt: dueAt + from + i } })),
      );
      await Promise.all(chunk);
    }
    assert.equal(await getSqliteTimerStore({ database: first.database }).pendingCount(), count);
    await first.close();

    const second = getSqliteEventStore({ path, inlineProjections: [sqliteTimerProjection()] });
    try {
      const timers = getSqliteTimerStore({ database: second.database });
      const handler = createWorkflowHandler(job, { store: second });
      const later = dueAt + count + 1;
      const poller = createWorkflowTimers({
        timers,
        handlers: [handler],
        batchSize: 500,
        clock: { now: () => later, setTimer: () => () => {} },
      });
      const before = second.stats().commits;
      assert.deepEqual(await poller.fireDue(), { fired: count, dropped: 0, failed: 0 });
      const commits = second.stats().commits - before;
      // Batches of 64 (the default), each one group commit: far fewer commits than timers.
      assert.ok(commits <= Math.ceil(count / 64) * 2, `${commits} commits for ${count} timers`);
      assert.equal(await timers.pendingCount(), 0);
      const fired = new Set<string>();
      let records = 0;
      for await (const event of second.readAll({ categories: ['job'], types: ['$workflow.input'] })) {
        const timer = (event.data as { timer?: { timerId: string } }).timer;
        if (!timer) continue;
        records++;
        fired.add(timer.timerId);
      }
      assert.equal(records, count);
      assert.equal(fired.size, count);
    } finally {
      await second.close();
    }
  });
});
