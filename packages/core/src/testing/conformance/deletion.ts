import assert from 'node:assert/strict';
import { type ConformanceCase, collectAll, event, rejectsWithCode } from './context.ts';

export const deletionCases: ConformanceCase[] = [
  {
    name: 'deleting the newest events never lets their positions be handed out again',
    async run({ store, category }) {
      const cat = category();
      const head = await store.headPosition();
      await store.append(`${cat}-keep`, [event('Keep')]);
      const doomed = await store.append(`${cat}-gone`, [event('Gone'), event('Gone')]);
      await store.deleteStream(`${cat}-gone`);
      assert.ok((await store.headPosition()) >= doomed.position, 'the head moved back after a delete');
      const after = await store.append(`${cat}-new`, [event('New')]);
      assert.ok(after.position > doomed.position, 'a deleted position was reused');
      const truncated = await store.append(`${cat}-t`, [event('T1'), event('T2')]);
      await store.truncateBefore(`${cat}-t`, 10);
      const later = await store.append(`${cat}-new`, [event('Later')]);
      assert.ok(later.position > truncated.position, 'a truncated position was reused');
      const seen = await collectAll(store, { after: head });
      assert.deepEqual(
        seen.map((e) => e.type),
        ['Keep', 'New', 'Later'],
      );
      assert.ok(seen.every((e) => e.streamId.length > 0));
    },
  },
  {
    name: 'soft delete removes the events; the stream can start again from version 1',
    async run({ store, category }) {
      const cat = category();
      const id = `${cat}-1`;
      const head = await store.headPosition();
      await store.append(id, [event('A'), event('B')]);
      await store.append(`${cat}-2`, [event('Keep')]);
      await store.deleteStream(id);
      assert.deepEqual(await store.readStream(id), { streamId: id, exists: false, version: 0, events: [] });
      assert.equal(await store.streamInfo(id), undefined);
      assert.deepEqual(
        (await collectAll(store, { after: head, categories: [cat] })).map((e) => e.type),
        ['Keep'],
      );
      const again = await store.append(id, [event('Again')], { expectedVersion: 'no-stream' });
      assert.equal(again.version, 1);
      assert.deepEqual(
        (await collectAll(store, { after: head, categories: [cat] })).map((e) => e.type),
        ['Keep', 'Again'],
      );
    },
  },
  {
    name: 'hard delete tombstones the stream: reads and appends throw StreamDeletedError',
    async run({ store, category }) {
      const cat = category();
      const id = `${cat}-1`;
      const head = await store.headPosition();
      await store.append(id, [event('A'), event('B')]);
      await store.deleteStream(id, { mode: 'hard' });
      await rejectsWithCode(store.readStream(id), 'STREAM_DELETED');
      await rejectsWithCode(store.append(id, [event('C')]), 'STREAM_DELETED');
      await rejectsWithCode(store.append(id, [event('C')], { expectedVersion: 'no-stream' }), 'STREAM_DELETED');
      await rejectsWithCode(store.deleteStream(id), 'STREAM_DELETED');
      await rejectsWithCode(store.truncateBefore(id, 2), 'STREAM_DELETED');
      const info = await store.streamInfo(id);
      assert.equal(info?.tombstoned, true);
      assert.equal(info?.exists, false);
      assert.equal(info?.version, 2);
      assert.deepEqual(await collectAll(store, { after: head, categories: [cat] }), []);
    },
  },
  {
    name: 'delete checks expectedVersion, and a missing stream is StreamNotFoundError',
    async run({ store, streamId }) {
      const id = streamId();
      await store.append(id, [event('A'), event('B')]);
      await rejectsWithCode(store.deleteStream(id, { expectedVersion: 1 }), 'CONCURRENCY_CONFLICT');
      assert.equal((await store.readStream(id)).version, 2);
      await store.deleteStream(id, { expectedVersion: 2, mode: 'soft' });
      await rejectsWithCode(store.deleteStream(id), 'STREAM_NOT_FOUND');
      await rejectsWithCode(store.deleteStream(streamId(), { mode: 'hard' }), 'STREAM_NOT_FOUND');
      await rejectsWithCode(store.deleteStream(id, { mode: 'gone' as never }), 'VALIDATION');
    },
  },
  {
    name: 'truncateBefore removes earlier events from every read and keeps the version',
    async run({ store, category }) {
      const cat = category();
      const id = `${cat}-1`;
      const head = await store.headPosition();
      await store.append(
        id,
        Array.from({ length: 5 }, (_, i) => event('N', { n: i + 1 })),
      );
      await store.truncateBefore(id, 4);
      const read = await store.readStream(id);
      assert.equal(read.version, 5);
      assert.deepEqual(
        read.events.map((e) => e.streamVersion),
        [4, 5],
      );
      assert.deepEqual(
        (await collectAll(store, { after: head, categories: [cat] })).map((e) => e.streamVersion),
        [4, 5],
      );
      assert.equal((await store.streamInfo(id))?.truncatedBefore, 4);
      await store.truncateBefore(id, 2); // never un-truncates
      assert.equal((await store.readStream(id)).events.length, 2);
      assert.equal((await store.append(id, [event('N')], { expectedVersion: 5 })).version, 6);
      await store.truncateBefore(id, 1000); // past the end: everything so far
      assert.deepEqual((await store.readStream(id)).events, []);
      assert.equal((await store.streamInfo(id))?.truncatedBefore, 7);
      assert.equal((await store.append(id, [event('N')], { expectedVersion: 6 })).version, 7);
      assert.deepEqual(
        (await store.readStream(id)).events.map((e) => e.streamVersion),
        [7],
      );
      await rejectsWithCode(store.truncateBefore(`${cat}-none`, 2), 'STREAM_NOT_FOUND');
      await rejectsWithCode(store.truncateBefore(id, 0), 'VALIDATION');
    },
  },
];
