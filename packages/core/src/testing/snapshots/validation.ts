import assert from 'node:assert/strict';
import type { ValidationError } from '../../errors/index.ts';
import type { SnapshotToSave } from '../../snapshots/types.ts';
import { rejectsWithCode } from '../conformance/context.ts';
import { type SnapshotConformanceCase, snapshotOf } from './context.ts';

/** The paths of a `ValidationError`'s issues. */
async function issuePaths(work: Promise<unknown>): Promise<string[]> {
  const error = await rejectsWithCode<ValidationError>(work, 'VALIDATION');
  return error.issues.map((issue) => issue.path);
}

export const validationCases: SnapshotConformanceCase[] = [
  {
    name: 'a state JSON cannot carry is a ValidationError naming every path, and nothing is written',
    async run({ snapshots, streamId }) {
      const id = streamId();
      await snapshots.save(snapshotOf(id, 1, { kept: true }));
      const cyclic: Record<string, unknown> = { name: 'loop' };
      cyclic.self = cyclic;
      const state = {
        lines: [{ price: 1 }, { price: Number.NaN }, undefined],
        owner: { since: 10n },
        tags: new Set(['a']),
        index: new Map([['a', 1]]),
        compute: () => 1,
        cyclic,
      };
      const paths = await issuePaths(snapshots.save(snapshotOf(id, 2, state)));
      assert.deepEqual(paths.sort(), [
        'snapshot.state.compute',
        'snapshot.state.cyclic.self',
        'snapshot.state.index',
        'snapshot.state.lines[1].price',
        'snapshot.state.lines[2]',
        'snapshot.state.owner.since',
        'snapshot.state.tags',
      ]);
      const stored = await snapshots.load(id);
      assert.equal(stored?.version, 1);
      assert.deepEqual(stored?.state, { kept: true });
      await rejectsWithCode(snapshots.save({ ...snapshotOf(id, 3), state: undefined }), 'VALIDATION');
      await rejectsWithCode(snapshots.save(snapshotOf(id, 3, '\ud800 lone surrogate')), 'VALIDATION');
      assert.equal((await snapshots.load(id))?.version, 1);
    },
  },
  {
    name: 'a snapshot with a bad or unknown field is a ValidationError naming each',
    async run({ snapshots, streamId }) {
      const id = streamId();
      const valid = snapshotOf(id, 5);
      const cases: [Record<string, unknown>, string[]][] = [
        [{ ...valid, streamId: '' }, ['snapshot.streamId']],
        [{ ...valid, streamId: 'tab\there' }, ['snapshot.streamId']],
        [{ ...valid, version: 0 }, ['snapshot.version']],
        [{ ...valid, version: 1.5 }, ['snapshot.version']],
        [{ ...valid, version: '5' }, ['snapshot.version']],
        [{ ...valid, snapshotVersion: 0 }, ['snapshot.snapshotVersion']],
        [{ ...valid, snapshotVersion: 2_147_483_648 }, ['snapshot.snapshotVersion']],
        [{ ...valid, lastEventId: '' }, ['snapshot.lastEventId']],
        [{ ...valid, name: '' }, ['snapshot.name']],
        [{ ...valid, name: 42 }, ['snapshot.name']],
        [{ ...valid, takenAt: new Date(Number.NaN) }, ['snapshot.takenAt']],
        [{ ...valid, takenAt: '2024-01-01' }, ['snapshot.takenAt']],
        [{ ...valid, stateVersion: 2 }, ['snapshot.stateVersion']],
        [{ streamId: id }, ['snapshot.lastEventId', 'snapshot.snapshotVersion', 'snapshot.state', 'snapshot.version']],
        [
          { ...valid, version: -1, snapshotVersion: 'one', state: { n: Number.POSITIVE_INFINITY } },
          ['snapshot.snapshotVersion', 'snapshot.state.n', 'snapshot.version'],
        ],
      ];
      for (const [snapshot, expected] of cases) {
        const paths = await issuePaths(snapshots.save(snapshot as unknown as SnapshotToSave));
        assert.deepEqual(
          paths.sort(),
          expected,
          JSON.stringify(snapshot, (_, v) => (v === undefined ? 'undefined' : v)),
        );
      }
      for (const notObject of [null, undefined, 'snapshot', [valid]]) {
        assert.deepEqual(await issuePaths(snapshots.save(notObject as unknown as SnapshotToSave)), ['snapshot']);
      }
      assert.equal(await snapshots.load(id), undefined, 'nothing was written');
    },
  },
  {
    name: 'every store keeps what the event store can hold: a stream id of 600 characters, the longest name, the largest snapshot version',
    async run({ snapshots, streamId }) {
      // An event store may be given a `limits.maxStreamIdLength` up to 600. CJK characters are 3 UTF-8
      // bytes each, in an order no compression shortens: PostgreSQL's index keeps the id and the name.
      const incompressible = (length: number, seed: number) =>
        Array.from({ length }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919 + seed) % 20000))).join('');
      const prefix = `${streamId()}-`;
      const long = prefix + incompressible(600 - prefix.length, 0);
      const name = incompressible(256, 1);
      const snapshot = { ...snapshotOf(long, 3), name, snapshotVersion: 2_147_483_647 };
      assert.equal(await snapshots.save(snapshot), true);
      const stored = await snapshots.load(long, { name });
      assert.deepEqual([stored?.version, stored?.snapshotVersion], [3, 2_147_483_647]);
      assert.equal(await snapshots.delete(long, { name }), true);
      // No event store takes a longer id.
      const longer = `${long}x`;
      assert.deepEqual(await issuePaths(snapshots.save({ ...snapshot, streamId: longer })), ['snapshot.streamId']);
      assert.deepEqual(await issuePaths(snapshots.load(longer)), ['streamId']);
    },
  },
  {
    name: 'load and delete check the stream id and their options',
    async run({ snapshots }) {
      for (const method of ['load', 'delete'] as const) {
        const call = (streamId: unknown, options?: unknown) =>
          (snapshots[method] as (id: unknown, o?: unknown) => Promise<unknown>)(streamId, options);
        assert.deepEqual(await issuePaths(call('')), ['streamId']);
        assert.deepEqual(await issuePaths(call(7)), ['streamId']);
        assert.deepEqual(await issuePaths(call('s-1', { name: '' })), [`${method} options.name`]);
        assert.deepEqual(await issuePaths(call('s-1', { nmae: 'x' })), [`${method} options.nmae`]);
        assert.deepEqual(await issuePaths(call('s-1', 'default')), [`${method} options`]);
      }
    },
  },
];
