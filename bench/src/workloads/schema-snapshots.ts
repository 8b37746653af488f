import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Decider, type Event, type HandleCommandOptions, handleCommand } from '@factline/core';
import { getSqliteEventStore, getSqliteSnapshotStore, type SqliteEventStore } from '@factline/sqlite';
import type { Subject, Trial, Workload } from '../harness.ts';
import { orderData } from './payload.ts';
import { emmettSubject } from './sqlite.ts';

/** The stream every subject loads. */
const EVENTS = 10_000;
/** Snapshot policy of the `factline` subject: the tail a command reads averages half of it. */
const SNAPSHOT_EVERY = 100;

type ItemAdded = Event<'ItemAdded', ReturnType<typeof orderData>>;
interface OrderTotals {
  items: number;
  total: number;
}

/** One event per command; the state counts items and sums totals (as the Emmett subject's evolve). */
const orderTotals: Decider<OrderTotals, { i: number }, ItemAdded> = {
  initialState: () => ({ items: 0, total: 0 }),
  evolve: (state, event) => ({ items: state.items + 1, total: state.total + event.data.total }),
  decide: (command) => [{ type: 'ItemAdded', data: orderData(command.i) }],
};

/**
 * Setup: a fresh SQLite file (the store's defaults: WAL, synchronous FULL) holding one stream of
 * EVENTS events, 1,000 per append, then one command (with snapshots: it writes the first one).
 * Run: `commands` commands on that stream, one at a time, each a whole `handleCommand` (load,
 * decide, append); with snapshots, the saves they start are awaited before the clock stops.
 */
function commandTrial(commands: number, snapshots: boolean): Subject['trial'] {
  return () => {
    const dir = mkdtempSync(join(tmpdir(), 'factline-bench-snapshots-'));
    let store: SqliteEventStore;
    let options: HandleCommandOptions<OrderTotals, ItemAdded> = {};
    const failures: unknown[] = [];
    let next = 0;
    const command = async () => {
      const result = await handleCommand(store, 'order-1', { i: next++ }, orderTotals, options);
      if (result.state.items !== result.version) throw new Error(`state of ${result.state.items} at ${result.version}`);
      return result;
    };
    const trial: Trial = {
      setup: async () => {
        store = getSqliteEventStore({ path: join(dir, 'factline.db') });
        for (let done = 0; done < EVENTS; done += 1000) {
          await store.append(
            'order-1',
            Array.from({ length: 1000 }, (_, j) => ({ type: 'ItemAdded', data: orderData(done + j) })),
          );
        }
        if (snapshots) {
          const base = { store: getSqliteSnapshotStore({ database: store.database }), version: 1 };
          const onError = (error: unknown) => failures.push(error);
          // The first command writes the snapshot the measured ones start from.
          options = { snapshots: { ...base, every: 1, onError } };
          if (!(await (await command()).snapshotSaved)) throw new Error('the setup snapshot was not written');
          options = { snapshots: { ...base, every: SNAPSHOT_EVERY, onError } };
        } else {
          await command();
        }
      },
      run: async () => {
        const saves: Promise<boolean>[] = [];
        for (let i = 0; i < commands; i++) saves.push((await command()).snapshotSaved);
        await Promise.all(saves);
        if (failures.length > 0) throw new Error(`snapshot failures: ${String(failures[0])}`);
        return commands;
      },
      teardown: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return trial;
  };
}

export const schemaSnapshotWorkloads: Workload[] = [
  {
    name: 'schema-handle-command-10k',
    warmup: true,
    description:
      `commands on a ${EVENTS.toLocaleString('en')}-event SQLite stream: factline = handleCommand with a snapshot ` +
      `(every ${SNAPSHOT_EVERY}), factline-no-snapshot = handleCommand reading every event, emmett = aggregateStream ` +
      '(the load alone: no decide, no append) on the same stream in its own store',
    unit: 'commands/s',
    subjects: [
      { name: 'factline', trial: commandTrial(200, true) },
      { name: 'factline-no-snapshot', trial: commandTrial(20, false) },
      emmettSubject(async (_peer, dir) => {
        const { emmettAggregateStream } = await import('../peers/emmett-sqlite-aggregate.ts');
        return emmettAggregateStream(dir, EVENTS, 10);
      }),
    ],
  },
];
