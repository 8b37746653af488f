import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DeadLetter, defineProjection, type TraceTree } from '@factline/core';
import { createProjectionRunner } from '@factline/core/adapter';
import { waitUntil } from '@factline/core/testing';
import {
  getSqliteEventStore,
  getSqliteProjectionBackend,
  getSqliteTransport,
  startSqliteProjections,
} from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import { orderSchemas } from '../../../examples/orders/src/schemas.ts';
import { startOrderServices } from '../../../examples/orders/src/services.ts';
import { assertOneLine } from './fixtures/assert-output.ts';
import { fillOrdersDatabase } from './fixtures/orders-database.ts';
import { runFactline, runJson } from './fixtures/run-factline.ts';
import type { OutboxStatus, ProjectionState, StoredEvent, StreamSummary } from './inspect/inspector.ts';

let dir = '';
let db = '';
const factline = (...args: string[]) => runFactline(args, { db });
const json = <T>(...args: string[]) => runJson<T>(args, { db });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'factline-cli-operate-'));
  db = join(dir, 'orders.db');
  await fillOrdersDatabase(db);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('factline read commands on the orders SQLite file', () => {
  it('streams ls pages by id, filters by category, and prints a table', async () => {
    const first = await json<{ streams: StreamSummary[]; next: string | null }>('streams', 'ls', '--limit', '2');
    assert.deepEqual(
      first.streams.map((s) => [s.streamId, s.version]),
      [
        ['order-1001', 3],
        ['order-1002', 2],
      ],
    );
    assert.equal(first.next, 'order-1002');
    const rest = await json<{ streams: StreamSummary[]; next: string | null }>(
      'streams',
      'ls',
      '--after',
      'order-1002',
    );
    assert.deepEqual(
      rest.streams.map((s) => s.streamId),
      ['order-1003'],
    );
    assert.equal(rest.next, null);
    assert.equal((await json<{ streams: unknown[] }>('streams', 'ls', '--category', 'payment')).streams.length, 0);
    const text = await runFactline(['streams', 'ls', '--db', `sqlite:${db}`]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^stream +category +version +last event\norder-1001 +order +3 /);
  });

  it('streams show prints a stream from a version; an unknown stream exits 1', async () => {
    const shown = await json<{ events: StoredEvent[] }>('streams', 'show', 'order-1001', '--from', '2');
    assert.deepEqual(
      shown.events.map((e) => [e.streamVersion, e.type]),
      [
        [2, 'OrderPaid'],
        [3, 'OrderShipped'],
      ],
    );
    assert.equal(shown.events[0]?.metadata.correlationId, 'checkout-1001');
    const text = await factline('streams', 'show', 'order-1003', '--limit', '1');
    assert.match(text.stdout, /^#6 {2}order-1003@1 {2}OrderPlaced v2 /);
    assert.equal(text.stdout.trimEnd().split('\n').length, 1);
    const missing = await factline('streams', 'show', 'order-9');
    assert.equal(missing.code, 1);
    assertOneLine(missing.stderr, /^factline: stream 'order-9' not found$/);
  });

  it('trace prints the causal tree, or JSON; an unknown correlation id exits 1', async () => {
    const text = await factline('trace', 'checkout-1003');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^trace checkout-1003: 8 nodes from /);
    assert.match(text.stdout, /dead-lettered by notification after 1 attempt \(not retryable\)/);
    const tree = await json<TraceTree>('trace', 'checkout-1003');
    assert.equal(tree.found, true);
    assert.deepEqual(
      tree.roots.map((n) => n.type),
      ['OrderPlaced', 'OrderCancelled'],
    );
    const missing = await factline('trace', 'checkout-9999');
    assert.equal(missing.code, 1);
    assertOneLine(missing.stderr, /^factline: nothing carries correlation id 'checkout-9999'$/);
  });

  it('trace --limit keeps the earliest nodes and says the tree is cut', async () => {
    const text = await factline('trace', 'checkout-1003', '--limit', '3');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^trace checkout-1003: 3 nodes from /);
    assert.match(text.stdout, /truncated: more than 3 nodes/);
    const tree = await json<TraceTree>('trace', 'checkout-1003', '--limit', '3');
    assert.deepEqual([tree.nodeCount, tree.limit, tree.truncated], [3, 3, true]);
    assert.deepEqual(
      tree.roots.map((n) => n.type),
      ['OrderPlaced', 'OrderCancelled'],
      'breadth first: the roots before their children',
    );
    const whole = await json<TraceTree>('trace', 'checkout-1003', '--limit', '8');
    assert.deepEqual([whole.nodeCount, whole.truncated], [8, false]);
  });

  it('dlq ls filters by group and type; dlq show gives the record or exits 1', async () => {
    const all = await json<DeadLetter[]>('dlq', 'ls');
    assert.deepEqual(
      all.map((r) => [r.consumer, r.message.type]),
      [
        ['notification', 'OrderPlaced'],
        ['notification', 'OrderCancelled'],
      ],
    );
    assert.equal((await json<DeadLetter[]>('dlq', 'ls', '--group', 'payment')).length, 0);
    const placed = await json<DeadLetter[]>('dlq', 'ls', '--group', 'notification', '--type', 'OrderPlaced');
    assert.deepEqual(
      placed.map((r) => r.id),
      [all[0]?.id],
    );
    const id = all[1]?.id ?? '';
    const shown = await json<DeadLetter>('dlq', 'show', id);
    assert.equal(shown.error.message, 'notification refuses order 1003 (injected fault)');
    const text = await factline('dlq', 'show', id);
    assert.match(
      text.stdout,
      /^dead letter \S+ \(dead\)\ngroup +notification +topic order-events\nmessage +OrderCancelled /,
    );
    const missing = await factline('dlq', 'show', 'no-such-id');
    assert.equal(missing.code, 1);
    assertOneLine(missing.stderr, /^factline: dead letter 'no-such-id' not found$/);
  });

  it('outbox status counts the waiting entries and the oldest age; projections status shows the checkpoint', async () => {
    const outbox = await json<OutboxStatus & { oldestAgeMs: number }>('outbox', 'status');
    assert.equal(outbox.present, true);
    assert.equal(outbox.waiting, 1);
    assert.deepEqual(
      outbox.topics.map((t) => [t.topic, t.waiting]),
      [['receipts', 1]],
    );
    assert.ok(outbox.oldestAgeMs >= 0 && outbox.oldestAgeMs < 600_000, `age ${outbox.oldestAgeMs}`);
    assert.match((await factline('outbox', 'status')).stdout, /^1 waiting, oldest \d+ (ms|s|min)\ntopic/);

    const [relay, ...others] = await json<ProjectionState[]>('projections', 'status');
    assert.equal(others.length, 0);
    assert.deepEqual([relay?.name, relay?.position, relay?.head, relay?.lag], ['order_events_relay', 7, 7, 0]);
    assert.match(
      (await factline('projections', 'status')).stdout,
      /^projection +position +lag.*\norder_events_relay +7 +0 +v1 +0 /,
    );
  });

  it('events tail prints from a position, and follows appends made while it runs', async () => {
    const backlog = await factline('events', 'tail', '--from', '2', '--count', '3', '--json');
    assert.equal(backlog.code, 0, backlog.stderr);
    const lines = backlog.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as StoredEvent);
    assert.deepEqual(
      lines.map((e) => e.position),
      [2, 3, 4],
    );

    // The orders registry refuses other types: this writer stands for another part of the application.
    const store = getSqliteEventStore({ path: db });
    const stopTail = new AbortController();
    try {
      const head = await store.headPosition();
      const tail = runFactline(['events', 'tail', '--from', String(head + 1), '--count', '2', '--interval-ms', '10'], {
        db,
        signal: stopTail.signal,
      });
      await store.append('note-1', [{ type: 'NoteTaken', data: { n: 1 } }], { expectedVersion: 'no-stream' });
      await store.append('note-1', [{ type: 'NoteTaken', data: { n: 2 } }], { expectedVersion: 1 });
      const followed = await tail;
      assert.equal(followed.code, 0, followed.stderr);
      assert.deepEqual(
        followed.stdout
          .trimEnd()
          .split('\n')
          .map((l) => l.split('  ').slice(0, 2).join(' ')),
        [`#${head + 1} note-1@1`, `#${head + 2} note-1@2`],
      );
    } finally {
      stopTail.abort();
      await store.close();
    }
  });

  it('a reader never disturbs the application writing the same file', async () => {
    const store = getSqliteEventStore({ path: db });
    const before = await store.headPosition();
    let appended = 0;
    let stop = false;
    // The application keeps appending (one commit each) for as long as the commands run.
    const writing = (async () => {
      for (let i = 0; !stop || i < 50; i += 1) {
        await store.append(`load-${i}`, [{ type: 'Loaded', data: { i } }], { expectedVersion: 'no-stream' });
        appended += 1;
      }
    })();
    try {
      const runs = await Promise.all([
        factline('streams', 'ls', '--limit', '500'),
        runFactline(['events', 'tail', '--from', '1', '--count', String(before + 20), '--interval-ms', '5'], {
          db,
          signal: AbortSignal.timeout(20_000),
        }),
        factline('trace', 'checkout-1001'),
        factline('dlq', 'ls'),
        factline('outbox', 'status'),
      ]);
      for (const run of runs) assert.equal(run.code, 0, run.stderr);
    } finally {
      stop = true;
      await writing;
      await store.close();
    }
    assert.ok(appended >= 50, `${appended} appends, every one succeeded`);
    const after = await json<{ streams: StreamSummary[] }>('streams', 'ls', '--category', 'load', '--limit', '100000');
    assert.equal(after.streams.length, appended);
  });
});

describe('factline projections pause and resume', () => {
  it('a running runner holds at its next batch while paused, catches up once resumed, and rebuilds on request', async () => {
    const store = getSqliteEventStore({ path: db });
    const counted: number[] = [];
    const projection = defineProjection<Database>({
      name: 'note_count',
      handles: ['Noted'],
      handle: (events) => {
        counted.push(...events.map((e) => e.position));
      },
    });
    const runner = await startSqliteProjections(store, [projection], { idleCheckMs: 20 });
    try {
      await store.append('noted-1', [{ type: 'Noted', data: {} }], { expectedVersion: 'no-stream' });
      await runner.waitFor('note_count', await store.headPosition());
      const paused = await factline('projections', 'pause', 'note_count');
      assert.equal(paused.code, 0, paused.stderr);
      assert.equal(paused.stdout, 'note_count paused\n');
      await waitUntil(() => runner.status('note_count').state === 'paused', 'the runner holds');
      const before = runner.status('note_count').checkpoint;
      const { position } = await store.append('noted-2', [{ type: 'Noted', data: {} }], {
        expectedVersion: 'no-stream',
      });
      const status = await json<ProjectionState[]>('projections', 'status');
      assert.deepEqual(
        status.filter((p) => p.name === 'note_count').map((p) => [p.paused, p.position]),
        [[true, before]],
      );
      assert.match((await factline('projections', 'status')).stdout, /\nnote_count \(paused\) +\d+/);
      assert.equal(runner.status('note_count').state, 'paused');
      assert.equal(runner.status('note_count').checkpoint, before, 'nothing applied while paused');
      assert.equal(counted.length, 1);

      assert.equal((await factline('projections', 'resume', 'note_count')).code, 0);
      await runner.waitFor('note_count', position);
      assert.equal(counted.length, 2);
      assert.notEqual(runner.status('note_count').state, 'paused');

      const missing = await factline('projections', 'pause', 'no_such');
      assert.equal(missing.code, 1);
      assertOneLine(missing.stderr, /^factline: no projection 'no_such' has a checkpoint in this database$/);

      // A rebuild asked from here: the running runner resets and applies every event again.
      const rebuilt = await factline('projections', 'rebuild', 'note_count', '--json', '--interval-ms', '20');
      assert.equal(rebuilt.code, 0, rebuilt.stderr);
      const report = JSON.parse(rebuilt.stdout) as { projection: string; target: number; rate: number };
      assert.equal(report.projection, 'note_count');
      assert.ok(report.target >= position, `target ${report.target}`);
      assert.deepEqual(counted.slice(2).sort(), counted.slice(0, 2).sort(), 'both events applied once more');
      assert.ok(runner.status('note_count').checkpoint >= position);
    } finally {
      await runner.stop();
      await store.close();
    }
    // Nobody runs it any more: the request is not taken.
    const untaken = await factline('projections', 'rebuild', 'note_count', '--timeout-ms', '300');
    assert.equal(untaken.code, 1);
    assertOneLine(untaken.stderr, /^factline: no runner took the rebuild of 'note_count' within 300 ms/);
  });
});

describe('factline projections rebuild asked twice', () => {
  it('a request written over by a second rebuild is not taken for one a runner took: with no runner, both exit 1', async () => {
    const store = getSqliteEventStore({ path: db });
    const requested = () =>
      (
        store.database
          .prepare(
            "SELECT rebuild_requested_at AS at FROM factline_projection_controls WHERE name = 'order_events_relay'",
          )
          .get() as { at: number | null } | undefined
      )?.at ?? null;
    try {
      store.database
        .prepare(
          "UPDATE factline_projection_controls SET rebuild_requested_at = NULL WHERE name = 'order_events_relay'",
        )
        .run();
      const first = factline(
        'projections',
        'rebuild',
        'order_events_relay',
        '--timeout-ms',
        '2000',
        '--interval-ms',
        '20',
      );
      await waitUntil(() => requested() !== null, 'the first request written');
      const firstAt = requested();
      // The second writes its own request over the first (a second operator, or the first seemed stuck).
      const second = await factline('projections', 'rebuild', 'order_events_relay', '--timeout-ms', '300');
      assert.notEqual(requested(), firstAt);
      assert.equal(second.code, 1);
      const outcome = await first;
      assert.equal(outcome.code, 1, outcome.stdout);
      assertOneLine(outcome.stderr, /^factline: no runner took the rebuild of 'order_events_relay' within 2000 ms/);
    } finally {
      // Nothing left for a later runner to rebuild.
      store.database
        .prepare(
          "UPDATE factline_projection_controls SET rebuild_requested_at = NULL WHERE name = 'order_events_relay'",
        )
        .run();
      await store.close();
    }
  });
});

describe('factline projections status with versions', () => {
  it('shows the live version on the checkpoint of every version of a projection', async () => {
    const store = getSqliteEventStore({ path: db });
    const counting = (version: number) =>
      defineProjection<Database>({ name: 'ver_count', version, handles: ['Versioned'], handle: () => undefined });
    try {
      await store.append('versioned-1', [{ type: 'Versioned', data: {} }]);
      const v1 = await startSqliteProjections(store, [counting(1)], { idleCheckMs: 20 });
      await v1.waitFor('ver_count', await store.headPosition());
      await v1.stop();
      // Version 2 built side by side goes live once caught up.
      const v2 = await startSqliteProjections(store, [counting(2)], { idleCheckMs: 20 });
      await waitUntil(async () => (await v2.liveVersion('ver_count')) === 2, 'version 2 live');
      await v2.stop();
    } finally {
      await store.close();
    }
    const status = await json<ProjectionState[]>('projections', 'status');
    // Before: the checkpoint of v2 (`ver_count@v2`) showed v1, that of v1 showed v2.
    assert.deepEqual(
      status.filter((p) => p.name.startsWith('ver_count')).map((p) => [p.name, p.liveVersion]),
      [
        ['ver_count', 2],
        ['ver_count@v2', 2],
      ],
    );
  });
});

describe('factline projections rebuild that does not finish', () => {
  it('exits 1 once the rebuild has not moved for --timeout-ms, naming where it stands, not as rebuilt', async () => {
    const store = getSqliteEventStore({ path: db });
    let failing = false;
    const projection = defineProjection<Database>({
      name: 'stuck_count',
      handles: ['Stuck'],
      handle: () => {
        if (failing) throw new Error('the read model is gone');
      },
    });
    const runner = await startSqliteProjections(store, [projection], { idleCheckMs: 20, maxAttempts: 1 });
    try {
      await store.append('stuck-1', [
        { type: 'Stuck', data: {} },
        { type: 'Stuck', data: {} },
      ]);
      await runner.waitFor('stuck_count', await store.headPosition());
      // The runner takes the request and resets, then fails on the first event: the checkpoint stays at 0.
      failing = true;
      const stalled = await factline(
        'projections',
        'rebuild',
        'stuck_count',
        '--timeout-ms',
        '500',
        '--interval-ms',
        '20',
      );
      assert.equal(stalled.code, 1, stalled.stdout);
      assert.equal(stalled.stdout, '');
      assert.match(
        stalled.stderr,
        /factline: the rebuild of 'stuck_count' has not moved for 500 ms, at position 0 of \d+ \(has the application stopped/,
      );
      assert.equal(runner.status('stuck_count').state, 'failed');
    } finally {
      await runner.stop();
      await store.close();
    }
  });
});

describe('factline usage and connection errors', () => {
  it('exit 2 with one line, the stack only with --verbose', async () => {
    const cases: [string[], string | undefined, RegExp][] = [
      [['streams', 'ls'], undefined, /^factline: no database: give --db/],
      [['streams', 'ls'], join(dir, 'missing', 'x.db'), /^factline: cannot open SQLite file .*missing/],
      [['streams', 'ls', '--limit', '0'], db, /^factline: --limit must be a whole number of at least 1, got '0'$/],
      [['trace', 'x', '--limit', '0'], db, /^factline: --limit must be a whole number of at least 1, got '0'$/],
      [['trace', 'x', '--limit', '100001'], db, /^factline: --limit must be at most 100000, got '100001'$/],
      [['streams', 'ls', '--colour'], db, /^error: unknown option '--colour'/],
      [['streams', 'ls', '--schema', 'x'], db, /^factline: --schema applies to a postgres:\/\/ database only$/],
      [['dlq', 'redrive'], db, /^factline: give dead letter ids, or --all-matching/],
    ];
    for (const [args, database, expected] of cases) {
      const run = await runFactline(args, database === undefined ? {} : { db: database });
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assertOneLine(run.stderr, expected);
    }
    const verbose = await runFactline(['streams', 'ls', '--verbose']);
    assert.equal(verbose.code, 2);
    assert.match(verbose.stderr, /^factline: no database.*\nCliError: no database.*\n {4}at /);
  });
});

describe('factline dlq redrive and discard', () => {
  it('refuses without a terminal or --yes; a redriven dead letter is handled; discard marks the rest', async () => {
    const [placed, cancelled] = await json<DeadLetter[]>('dlq', 'ls');
    assert.ok(placed && cancelled);
    const refused = await factline('dlq', 'redrive', cancelled.id);
    assert.equal(refused.code, 2);
    assertOneLine(
      refused.stderr,
      /^factline: refusing to redrive 1 dead letter without a terminal to confirm on: add --yes$/,
    );
    assert.equal((await json<DeadLetter[]>('dlq', 'ls')).length, 2, 'nothing changed');

    // The application runs again, without the fault: the redriven message reaches notification.
    const store = getSqliteEventStore({ path: db, schemas: orderSchemas });
    const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 10 });
    const services = await startOrderServices(transport, store.database, { pollMs: 10 });
    try {
      const redriven = await factline('dlq', 'redrive', cancelled.id, '--yes');
      assert.equal(redriven.code, 0, redriven.stderr);
      assert.equal(redriven.stdout, '1 dead letter redriven\n');
      await waitUntil(
        () => services.actions().notification.some((a) => a.eventId === cancelled.message.id),
        'notification handled the redriven OrderCancelled',
      );
      const again = await factline('dlq', 'redrive', cancelled.id, '--yes');
      assert.equal(again.code, 1);
      assertOneLine(again.stderr, /^factline: no dead letter to redrive: \S+ \(already redriven\)$/);
      const record = await json<DeadLetter>('dlq', 'show', cancelled.id);
      assert.equal(record.state, 'redriven');
      assert.equal(record.redrives.length, 1);
    } finally {
      await services.stop();
      await transport.close();
      await store.close();
    }

    const discarded = await json<{ discarded: string[] }>(
      'dlq',
      'discard',
      '--all-matching',
      '--group',
      'notification',
      '--yes',
    );
    assert.deepEqual(discarded.discarded, [placed.id]);
    assert.deepEqual(await json<DeadLetter[]>('dlq', 'ls'), []);
    assert.deepEqual(
      (await json<DeadLetter[]>('dlq', 'ls', '--state', 'discarded')).map((r) => r.id),
      [placed.id],
    );
  });
});

describe('factline projections rebuild while a version is built beside the live one', () => {
  it('rebuilds the live version (the one built beside it never takes the request), or the version asked for', async () => {
    const side = join(dir, 'side-by-side.db');
    const store = getSqliteEventStore({ path: side });
    for (let i = 1; i <= 200; i++) await store.append(`side-${i}`, [{ type: 'Sided', data: {} }]);
    const head = await store.headPosition();
    const resets: number[] = [];
    const version = (v: 1 | 2) =>
      defineProjection<Database>({
        name: 'side_count',
        version: v,
        handles: ['Sided'],
        reset: () => {
          resets.push(v);
        },
        handle: () => undefined,
      });
    // Version 2 is slow to build (each batch of one event waits 50 ms before its commit, holding no lock) until
    // the test lets it go: it checks the controls before each batch, where version 1, idle, checks once a second.
    let slow = true;
    const base = getSqliteProjectionBackend(store);
    const slowBackend: typeof base = {
      ...base,
      commit: async (batch) => {
        if (slow) await new Promise((resolve) => setTimeout(resolve, 50));
        return base.commit(batch);
      },
    };
    const v1 = await startSqliteProjections(store, [version(1)], { idleCheckMs: 1000, lease: false });
    const v2 = createProjectionRunner(slowBackend, [version(2)], { idleCheckMs: 1000, batchSize: 1, maxBatchSize: 1 });
    await v2.start();
    try {
      await v1.waitFor('side_count', head);
      await waitUntil(() => v2.status('side_count').checkpoint > 0, 'version 2 building');
      const live = await runFactline(['projections', 'rebuild', 'side_count', '--json', '--interval-ms', '20'], {
        db: side,
      });
      assert.equal(live.code, 0, live.stderr);
      assert.deepEqual(resets, [1], 'the live version was the one reset');
      const report = JSON.parse(live.stdout) as { version: number; target: number };
      assert.deepEqual([report.version, report.target], [1, head]);
      assert.ok(v1.status('side_count').checkpoint >= head);

      // Asked of version 2 while version 1 is live: version 2 resets; once it took the request it may go fast.
      const asking = runFactline(
        ['projections', 'rebuild', 'side_count', '--projection-version', '2', '--timeout-ms', '10000'],
        { db: side },
      );
      await waitUntil(() => resets.length === 2, 'the request taken', 15_000);
      assert.deepEqual(resets, [1, 2]);
      assert.equal(v2.status('side_count').liveVersion, 1, 'version 2 was not live when it took it');
      slow = false;
      const asked = await asking;
      assert.equal(asked.code, 0, asked.stderr);
      assert.match(asked.stdout, /^side_count \(version 2\) rebuilt up to position \d+ in /);
    } finally {
      await v2.stop();
      await v1.stop();
      await store.close();
    }
  });
});
