import assert from 'node:assert/strict';
import { type SnapshotConformanceCase, snapshotOf } from './context.ts';

export const saveAndLoadCases: SnapshotConformanceCase[] = [
  {
    name: 'a stream without a snapshot loads as undefined',
    async run({ snapshots, streamId }) {
      assert.equal(await snapshots.load(streamId()), undefined);
      assert.equal(await snapshots.load(streamId(), { name: 'other' }), undefined);
    },
  },
  {
    name: 'save then load gives back every field; takenAt is the store clock unless given',
    async run({ snapshots, streamId }) {
      const id = streamId();
      const before = Date.now();
      assert.equal(await snapshots.save(snapshotOf(id, 12, { total: 12, lines: ['a', 'b'] })), true);
      const after = Date.now();
      const loaded = await snapshots.load<{ total: number; lines: string[] }>(id);
      assert.ok(loaded);
      const { takenAt, ...rest } = loaded;
      assert.deepEqual(rest, {
        streamId: id,
        name: 'default',
        version: 12,
        lastEventId: 'event-12',
        snapshotVersion: 1,
        state: { total: 12, lines: ['a', 'b'] },
      });
      assert.ok(takenAt instanceof Date);
      assert.ok(
        takenAt.getTime() >= before - 1000 && takenAt.getTime() <= after + 1000,
        `takenAt ${takenAt.toISOString()}`,
      );

      const given = new Date('2024-05-06T07:08:09.123Z');
      await snapshots.save({ ...snapshotOf(id, 13), snapshotVersion: 4, takenAt: given, name: 'audit' });
      const named = await snapshots.load(id, { name: 'audit' });
      assert.equal(named?.takenAt.toISOString(), given.toISOString());
      assert.equal(named?.snapshotVersion, 4);
      assert.equal(named?.name, 'audit');
    },
  },
  {
    name: 'a later version replaces, the same version replaces, an earlier one is ignored',
    async run({ snapshots, streamId }) {
      const id = streamId();
      assert.equal(await snapshots.save(snapshotOf(id, 10)), true);
      assert.equal(await snapshots.save(snapshotOf(id, 20)), true);
      assert.equal((await snapshots.load(id))?.version, 20);
      assert.equal(await snapshots.save(snapshotOf(id, 19, 'older')), false, 'an older save reports it was ignored');
      assert.deepEqual((await snapshots.load(id))?.state, { total: 20 });
      assert.equal(await snapshots.save({ ...snapshotOf(id, 20, 'again'), snapshotVersion: 2 }), true);
      const same = await snapshots.load(id);
      assert.equal(same?.state, 'again');
      assert.equal(same?.snapshotVersion, 2);
    },
  },
  {
    name: 'names keep separate snapshots of one stream; delete removes the named one only',
    async run({ snapshots, streamId }) {
      const id = streamId();
      await snapshots.save(snapshotOf(id, 30, 'default state'));
      await snapshots.save({ ...snapshotOf(id, 5, 'totals state'), name: 'totals' });
      assert.equal((await snapshots.load(id))?.state, 'default state');
      assert.equal((await snapshots.load(id, { name: 'totals' }))?.state, 'totals state');
      assert.equal(await snapshots.delete(id, { name: 'totals' }), true);
      assert.equal(await snapshots.load(id, { name: 'totals' }), undefined);
      assert.equal((await snapshots.load(id))?.version, 30, 'the other name is untouched');
      const other = streamId();
      assert.equal(await snapshots.load(other), undefined, 'another stream has none');
    },
  },
  {
    name: 'delete tells whether there was one; after it any version can be saved',
    async run({ snapshots, streamId }) {
      const id = streamId();
      assert.equal(await snapshots.delete(id), false);
      await snapshots.save(snapshotOf(id, 50));
      assert.equal(await snapshots.delete(id), true);
      assert.equal(await snapshots.load(id), undefined);
      assert.equal(await snapshots.delete(id), false);
      assert.equal(await snapshots.save(snapshotOf(id, 3)), true, 'a re-created stream starts low again');
      assert.equal((await snapshots.load(id))?.version, 3);
    },
  },
  {
    name: 'the state is copied: changing the saved object or a loaded state changes nothing stored',
    async run({ snapshots, streamId }) {
      const id = streamId();
      const state = { total: 1, lines: [{ sku: 'a' }] };
      const saving = snapshots.save(snapshotOf(id, 1, state));
      // Changed before the save settled: the store read it when called.
      state.total = 99;
      state.lines.push({ sku: 'b' });
      await saving;
      const loaded = await snapshots.load<typeof state>(id);
      assert.deepEqual(loaded?.state, { total: 1, lines: [{ sku: 'a' }] });
      loaded?.state.lines.push({ sku: 'c' });
      const again = await snapshots.load<typeof state>(id);
      assert.deepEqual(again?.state, { total: 1, lines: [{ sku: 'a' }] });
      assert.notEqual(again?.state, loaded?.state);
    },
  },
  {
    name: 'every JSON value comes back as it went in',
    async run({ snapshots, streamId }) {
      const states: unknown[] = [
        { nested: { deep: { list: [1, -2.5, 1e21, 0, Number.MAX_SAFE_INTEGER] } }, flag: true, none: null },
        ['mixed', 1, false, null, { a: [] }],
        'a string with "quotes", \\ backslashes, \n newlines, a \u0000 NUL, emoji 🎉 and ünïcödé',
        42,
        null,
        { '': 'empty key', 'with space': 1, ключ: 'value' },
      ];
      let version = 0;
      for (const state of states) {
        const id = streamId();
        version += 1;
        await snapshots.save(snapshotOf(id, version, state));
        assert.deepEqual((await snapshots.load(id))?.state, state);
      }
      const id = streamId();
      // An optional property left undefined is absent in JSON.
      await snapshots.save(snapshotOf(id, 1, { kept: 1, dropped: undefined }));
      assert.deepEqual((await snapshots.load(id))?.state, { kept: 1 });
    },
  },
  {
    name: 'concurrent saves of many versions leave the highest',
    async run({ snapshots, streamId }) {
      const id = streamId();
      const versions = Array.from({ length: 24 }, (_, i) => i + 1).sort(
        (a, b) => ((a * 7919) % 24) - ((b * 7919) % 24),
      );
      const results = await Promise.all(versions.map((v) => snapshots.save(snapshotOf(id, v))));
      assert.ok(results.includes(true));
      const loaded = await snapshots.load(id);
      assert.equal(loaded?.version, 24);
      assert.deepEqual(loaded?.state, { total: 24 });
    },
  },
  {
    name: 'another instance on the same backend sees what one saved and deleted',
    skip: (environment) => (environment.peer ? undefined : 'no peer: give the suite a second snapshot store'),
    async run({ snapshots, peer, streamId }) {
      const other = await (peer as NonNullable<typeof peer>)();
      const id = streamId();
      await snapshots.save(snapshotOf(id, 7));
      assert.equal((await other.load(id))?.version, 7);
      assert.equal(await other.save(snapshotOf(id, 6)), false, 'the other instance keeps the newer one too');
      await other.delete(id);
      assert.equal(await snapshots.load(id), undefined);
    },
  },
];
