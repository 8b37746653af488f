import assert from 'node:assert/strict';
import { handleCommand } from '../../commands/handle-command.ts';
import type { SnapshotErrorContext } from '../../commands/snapshot-options.ts';
import { StorageError } from '../../errors/index.ts';
import type { SnapshotStore } from '../../snapshots/types.ts';
import { countingStore, type SnapshotConformanceCase, seed, snapshotOptions, type Tally, tally } from './context.ts';

type Errors = { error: unknown; context: SnapshotErrorContext }[];

/** Saves a snapshot of `id` at its current version with a state no fold of its events gives. */
async function plantWrongSnapshot(
  snapshots: SnapshotStore,
  id: string,
  events: { readStream: (id: string) => Promise<{ version: number; events: { id: string }[] }> },
  snapshotVersion = 1,
) {
  const { version, events: stored } = await events.readStream(id);
  const lastEventId = stored[stored.length - 1]?.id as string;
  await snapshots.save({ streamId: id, version, lastEventId, snapshotVersion, state: { total: -1000, count: -1 } });
  return { version, lastEventId };
}

export const trustCases: SnapshotConformanceCase[] = [
  {
    name: 'a snapshot of another snapshotVersion is ignored: the state is rebuilt from the events and the snapshot replaced',
    async run({ snapshots, events, streamId }) {
      const id = streamId();
      const errors: Errors = [];
      await seed(events, id, 120);
      await plantWrongSnapshot(snapshots, id, events, 1);
      const counting = countingStore(events);
      const result = await handleCommand(counting.store, id, { n: 1 }, tally, {
        snapshots: snapshotOptions(snapshots, errors, { version: 2, every: 50 }),
      });
      assert.equal(counting.eventsRead(), 120, 'rebuilt from every event');
      assert.deepEqual(result.state, { total: 121, count: 121 });
      assert.equal(await result.snapshotSaved, true, 'crossed multiples of 50 since no usable snapshot');
      const replaced = await snapshots.load<Tally>(id);
      assert.equal(replaced?.snapshotVersion, 2);
      assert.equal(replaced?.version, 121);
      assert.deepEqual(replaced?.state, { total: 121, count: 121 });

      // And the new version's snapshot is used from now on.
      counting.reset();
      const next = await handleCommand(counting.store, id, { n: 1 }, tally, {
        snapshots: snapshotOptions(snapshots, errors, { version: 2, every: 50 }),
      });
      assert.equal(counting.eventsRead(), 1);
      assert.deepEqual(next.state, { total: 122, count: 122 });
      assert.deepEqual(errors, []);
    },
  },
  {
    name: 'a snapshot of a stream that was deleted and written again is not trusted, shorter or longer',
    async run({ snapshots, events, streamId }) {
      const errors: Errors = [];
      const options = { snapshots: snapshotOptions(snapshots, errors, { every: 1000 }) };
      // Shorter: the snapshot covers a version the new stream has not reached.
      const short = streamId();
      await seed(events, short, 60);
      await plantWrongSnapshot(snapshots, short, events);
      await events.deleteStream(short);
      await seed(events, short, 5);
      const fromShort = await handleCommand(events, short, { n: 1 }, tally, options);
      assert.deepEqual(fromShort.state, { total: 6, count: 6 });
      assert.equal(await snapshots.load(short), undefined, 'the untrusted snapshot is deleted');
      // Longer: the stream passed the snapshot's version again, with other events.
      const long = streamId();
      await seed(events, long, 40);
      await plantWrongSnapshot(snapshots, long, events);
      await events.deleteStream(long);
      await seed(events, long, 45);
      const counting = countingStore(events);
      const fromLong = await handleCommand(counting.store, long, { n: 1 }, tally, options);
      assert.deepEqual(fromLong.state, { total: 46, count: 46 });
      assert.deepEqual(counting.reads(), [40, undefined], 'checked at its version, then read in full');
      assert.equal(await snapshots.load(long), undefined);
      assert.deepEqual(errors, []);
    },
  },
  {
    name: 'a snapshot whose event was truncated away is trusted: only the events after it are read',
    async run({ snapshots, events, streamId }) {
      const id = streamId();
      const errors: Errors = [];
      await seed(events, id, 30);
      const { events: stored } = await events.readStream(id);
      await snapshots.save({
        streamId: id,
        version: 30,
        lastEventId: stored[29]?.id as string,
        snapshotVersion: 1,
        state: { total: 30, count: 30 },
      });
      await seed(events, id, 3);
      await events.truncateBefore(id, 31);
      const counting = countingStore(events);
      const result = await handleCommand(counting.store, id, { n: 1 }, tally, {
        snapshots: snapshotOptions(snapshots, errors),
      });
      assert.equal(counting.eventsRead(), 3);
      assert.deepEqual(result.state, { total: 34, count: 34 });
      assert.equal(await result.snapshotSaved, false, 'no policy: snapshots are only read');
      assert.deepEqual(errors, []);
    },
  },
  {
    name: 'a snapshot the stream was truncated past (events after it gone too) is reported, deleted and not folded on',
    async run({ snapshots, events, streamId }) {
      const id = streamId();
      const errors: Errors = [];
      await seed(events, id, 10);
      const { events: stored } = await events.readStream(id);
      await snapshots.save({
        streamId: id,
        version: 10,
        lastEventId: stored[9]?.id as string,
        snapshotVersion: 1,
        state: { total: 10, count: 10 },
      });
      await seed(events, id, 9);
      await events.truncateBefore(id, 15);
      const result = await handleCommand(events, id, { n: 1 }, tally, {
        snapshots: snapshotOptions(snapshots, errors),
      });
      assert.deepEqual(
        result.state,
        { total: 6, count: 6 },
        'the events left (15 to 19) and the new one, as with no snapshot',
      );
      assert.equal(errors.length, 1, 'the gap reported');
      assert.equal(errors[0]?.context.operation, 'load');
      assert.match(String((errors[0]?.error as Error | undefined)?.message), /events 11 to 14 are in neither/);
      assert.equal(await snapshots.load(id), undefined, 'the snapshot deleted');
    },
  },
  {
    name: 'a failing snapshot store is reported to onError and never fails the command',
    async run({ snapshots, events, streamId }) {
      const id = streamId();
      await seed(events, id, 10);
      const broken = (fail: 'load' | 'save' | 'both'): SnapshotStore => ({
        load: (...args) =>
          fail === 'save' ? snapshots.load(...args) : Promise.reject(new StorageError('snapshots unreachable')),
        save: (...args) => (fail === 'load' ? snapshots.save(...args) : Promise.reject(new StorageError('disk full'))),
        delete: (...args) => snapshots.delete(...args),
      });
      const errors: Errors = [];
      const failingSave = await handleCommand(events, id, { n: 1 }, tally, {
        snapshots: snapshotOptions(broken('save'), errors, { every: 1 }),
      });
      assert.equal(failingSave.version, 11, 'the command succeeded');
      assert.equal(await failingSave.snapshotSaved, false);
      assert.deepEqual(
        errors.map((e) => [e.context.operation, (e.error as Error).message]),
        [['save', 'disk full']],
      );
      assert.deepEqual(errors[0]?.context, { streamId: id, name: 'default', operation: 'save' });
      assert.equal(await snapshots.load(id), undefined);

      errors.length = 0;
      const saved = await handleCommand(events, id, { n: 1 }, tally, {
        snapshots: snapshotOptions(snapshots, errors, { every: 1 }),
      });
      assert.equal(await saved.snapshotSaved, true);
      const failingLoad = await handleCommand(events, id, { n: 1 }, tally, {
        snapshots: snapshotOptions(broken('load'), errors, { every: 1 }),
      });
      assert.deepEqual(failingLoad.state, { total: 13, count: 13 }, 'rebuilt from the events');
      assert.equal(await failingLoad.snapshotSaved, true);
      assert.deepEqual(
        errors.map((e) => e.context.operation),
        ['load'],
      );

      // A hook that throws changes nothing either.
      const throwing = await handleCommand(events, id, { n: 1 }, tally, {
        snapshots: {
          ...snapshotOptions(broken('both'), []),
          every: 1,
          onError: () => {
            throw new Error('the hook failed');
          },
        },
      });
      assert.equal(throwing.version, 14);
      assert.equal(await throwing.snapshotSaved, false);
    },
  },
];
