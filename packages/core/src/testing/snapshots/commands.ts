import assert from 'node:assert/strict';
import { foldEvents } from '../../commands/decider.ts';
import { handleCommand } from '../../commands/handle-command.ts';
import type { SnapshotErrorContext } from '../../commands/snapshot-options.ts';
import {
  type Added,
  countingStore,
  type SnapshotConformanceCase,
  seed,
  snapshotOptions,
  type Tally,
  tally,
} from './context.ts';

type Errors = { error: unknown; context: SnapshotErrorContext }[];

export const commandCases: SnapshotConformanceCase[] = [
  {
    name: 'every N: a snapshot is written each time the stream crosses a multiple of N',
    async run({ snapshots, events, streamId }) {
      const id = streamId();
      const errors: Errors = [];
      const options = { snapshots: snapshotOptions(snapshots, errors, { every: 3 }) };
      const savedAt: number[] = [];
      for (const times of [1, 1, 1, 1, 1, 2, 1, 4, 1]) {
        const result = await handleCommand(events, id, { n: 1, times }, tally, options);
        if (await result.snapshotSaved) savedAt.push(result.version);
      }
      // Versions after each command: 1 2 3 4 5 7 8 12 13; multiples of 3 crossed at 3, 7 (6), 12 (9 and 12).
      assert.deepEqual(savedAt, [3, 7, 12]);
      const snapshot = await snapshots.load<Tally>(id);
      assert.equal(snapshot?.version, 12);
      assert.deepEqual(snapshot?.state, { total: 12, count: 12 });
      const { events: stored } = await events.readStream(id);
      assert.equal(snapshot?.lastEventId, stored[11]?.id, 'the id of the last event folded');
      assert.equal(snapshot?.snapshotVersion, 1);
      assert.deepEqual(errors, []);
    },
  },
  {
    name: 'a policy function decides, seeing the state, the version, the new events and the distance',
    async run({ snapshots, events, streamId }) {
      const id = streamId();
      const errors: Errors = [];
      const seen: [number, number, number][] = [];
      const every = (context: {
        state: Tally;
        version: number;
        newEvents: readonly unknown[];
        eventsSinceSnapshot: number;
      }) => {
        seen.push([context.version, context.newEvents.length, context.eventsSinceSnapshot]);
        return context.state.total >= 10 && context.eventsSinceSnapshot >= 3;
      };
      const options = { snapshots: snapshotOptions(snapshots, errors, { every }) };
      const saved: boolean[] = [];
      for (const n of [4, 4, 4, 1, 1, 1]) {
        saved.push(await (await handleCommand(events, id, { n }, tally, options)).snapshotSaved);
      }
      assert.deepEqual(saved, [false, false, true, false, false, true]);
      assert.deepEqual(seen, [
        [1, 1, 1],
        [2, 1, 2],
        [3, 1, 3],
        [4, 1, 1],
        [5, 1, 2],
        [6, 1, 3],
      ]);
      assert.equal((await snapshots.load(id))?.version, 6);
    },
  },
  {
    name: 'a command starts from the snapshot and reads only the events from its version on',
    async run({ snapshots, events, streamId }) {
      const id = streamId();
      const errors: Errors = [];
      await seed(events, id, 250);
      const counting = countingStore(events);
      const options = { snapshots: snapshotOptions(snapshots, errors, { every: 100 }) };
      const first = await handleCommand(counting.store, id, { n: 1 }, tally, options);
      assert.equal(counting.eventsRead(), 250, 'no snapshot yet: every event is read');
      assert.equal(await first.snapshotSaved, true);
      assert.equal((await snapshots.load(id))?.version, 251);

      await seed(events, id, 30);
      counting.reset();
      const second = await handleCommand(counting.store, id, { n: 5 }, tally, options);
      // The snapshot's own event (to check its id) and the 30 after it.
      assert.equal(counting.eventsRead(), 31);
      assert.deepEqual(counting.reads(), [251]);
      assert.deepEqual(second.state, { total: 286, count: 282 });
      assert.equal(second.version, 282);
      assert.equal(await second.snapshotSaved, false, 'no multiple of 100 crossed since 251');
      const all = await events.readStream<Added>(id);
      assert.deepEqual(foldEvents(tally, all.events), second.state, 'the same state as a full read');
      assert.deepEqual(errors, []);
    },
  },
  {
    name: 'concurrent commands with snapshots: conflicts are retried and every snapshot matches the events',
    async run({ snapshots, events, streamId }) {
      const id = streamId();
      const errors: Errors = [];
      await seed(events, id, 40);
      const options = {
        snapshots: snapshotOptions(snapshots, errors, { every: 2 }),
        maxAttempts: 50,
        sleep: async () => {},
      };
      await (await handleCommand(events, id, { n: 1 }, tally, options)).snapshotSaved;
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => handleCommand(events, id, { n: i + 1 }, tally, options)),
      );
      await Promise.all(results.map((r) => r.snapshotSaved));
      const versions = results.map((r) => r.version).sort((a, b) => a - b);
      assert.deepEqual(
        versions,
        Array.from({ length: 12 }, (_, i) => 42 + i),
        'each command appended once',
      );
      assert.ok(results.every((r) => r.state.count === r.version));
      assert.ok(
        results.some((r) => r.attempts > 1),
        'the commands raced: some were decided again after a ConcurrencyError',
      );
      const snapshot = await snapshots.load<Tally>(id);
      assert.ok(snapshot && snapshot.version >= 52, `snapshot at ${snapshot?.version}`);
      const upTo = await events.readStream<Added>(id, { to: snapshot.version });
      assert.deepEqual(snapshot.state, foldEvents(tally, upTo.events), 'the snapshot is the fold of its events');
      assert.equal(snapshot.lastEventId, upTo.events[upTo.events.length - 1]?.id);
      const next = await handleCommand(events, id, { n: 0 }, tally, options);
      assert.deepEqual(next.state, { total: 41 + 78, count: 54 });
      assert.deepEqual(errors, []);
    },
  },
];
