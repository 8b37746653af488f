import assert from 'node:assert/strict';
import { assertUnchanged, type ConformanceCase, collectAll, event, rejectsWithCode } from './context.ts';

export const atomicityCases: ConformanceCase[] = [
  {
    name: 'a conflicting append writes none of its events',
    async run({ store, streamId }) {
      const id = streamId();
      await store.append(id, [event('A')]);
      const head = await store.headPosition();
      await rejectsWithCode(
        store.append(id, [event('B'), event('C'), event('D')], { expectedVersion: 0 }),
        'CONCURRENCY_CONFLICT',
      );
      await assertUnchanged(store, head, id, 1);
    },
  },
  {
    name: 'one bad event fails the whole append and writes nothing',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      await rejectsWithCode(
        store.append(id, [event('Good', { a: 1 }), event('Good', { a: 2 }), event('Bad', { n: 10n })]),
        'VALIDATION',
      );
      await assertUnchanged(store, head, id, 0);
      assert.equal((await store.readStream(id)).exists, false);
    },
  },
  {
    name: 'the same append sent twice (same ids, same expectedVersion) is stored once and succeeds twice',
    async run({ store, streamId, category }) {
      const id = streamId();
      const batch = [event('A', { n: 1 }, { id: `${category()}-1` }), event('B', { n: 2 }, { id: `${category()}-2` })];
      const first = await store.append(id, batch, { expectedVersion: 'no-stream' });
      const head = await store.headPosition();
      const second = await store.append(id, batch, { expectedVersion: 'no-stream' });
      assert.equal(second.version, first.version);
      assert.equal(second.position, first.position);
      assert.deepEqual(
        second.events.map((e) => e.id),
        first.events.map((e) => e.id),
      );
      const third = await store.append(id, batch); // 'any'
      assert.equal(third.version, 2);
      await assertUnchanged(store, head, id, 2);
      // After the retry, the stream goes on from where the first append left it.
      assert.equal((await store.append(id, [event('C')], { expectedVersion: 2 })).version, 3);
    },
  },
  {
    name: 'generated ids come back in the result, so a caller can retry with them',
    async run({ store, streamId }) {
      const id = streamId();
      const first = await store.append(id, [event('A', { n: 1 })]);
      const retry = first.events.map((e) => ({ id: e.id, type: e.type, data: e.data }));
      const second = await store.append(id, retry, { expectedVersion: 0 });
      assert.equal(second.position, first.position);
      assert.equal((await store.readStream(id)).events.length, 1);
    },
  },
  {
    name: 'a stored event id with other content, another stream or only part of the batch is an EventIdConflictError',
    async run({ store, streamId, category }) {
      const id = streamId();
      const eventId = `${category()}-e`;
      await store.append(id, [event('A', { n: 1 }, { id: eventId })]);
      const head = await store.headPosition();
      await rejectsWithCode(store.append(id, [event('A', { n: 2 }, { id: eventId })]), 'EVENT_ID_CONFLICT');
      await rejectsWithCode(store.append(id, [event('B', { n: 1 }, { id: eventId })]), 'EVENT_ID_CONFLICT');
      await rejectsWithCode(store.append(streamId(), [event('A', { n: 1 }, { id: eventId })]), 'EVENT_ID_CONFLICT');
      await rejectsWithCode(
        store.append(id, [event('A', { n: 1 }, { id: eventId }), event('New', {}, { id: `${eventId}-2` })]),
        'EVENT_ID_CONFLICT',
      );
      await rejectsWithCode(
        store.append(id, [event('A', { n: 1 }, { id: eventId })], { expectedVersion: 1 }),
        'EVENT_ID_CONFLICT',
      );
      await assertUnchanged(store, head, id, 1);
    },
  },
  {
    name: 'the same id twice in one append is a ValidationError',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      await rejectsWithCode(store.append(id, [event('A', {}, { id: 'x' }), event('B', {}, { id: 'x' })]), 'VALIDATION');
      await assertUnchanged(store, head, id, 0);
    },
  },
  {
    name: 'concurrent appends in one batch: each is checked and fails on its own',
    async run({ store, streamId, category }) {
      const hot = streamId();
      await store.append(hot, [event('Start')]);
      const cat = category();
      const head = await store.headPosition();
      // Fired together so that a store that groups commits puts them in one batch.
      const results = await Promise.allSettled([
        store.append(hot, [event('Win')], { expectedVersion: 1 }),
        store.append(hot, [event('Lose')], { expectedVersion: 1 }),
        store.append(`${cat}-ok1`, [event('Ok')], { expectedVersion: 'no-stream' }),
        store.append(`${cat}-bad`, [event('Bad', { f: () => 1 })]),
        store.append(`${cat}-ok2`, [event('Ok'), event('Ok')]),
        store.append(`${cat}-missing`, [event('X')], { expectedVersion: 'stream-exists' }),
        store.append(hot, [event('Also')], { expectedVersion: 2 }),
      ]);
      const codes = results.map((r) =>
        r.status === 'fulfilled' ? 'ok' : String((r.reason as { code?: string }).code ?? r.reason),
      );
      assert.deepEqual(codes, ['ok', 'CONCURRENCY_CONFLICT', 'ok', 'VALIDATION', 'ok', 'CONCURRENCY_CONFLICT', 'ok']);
      assert.deepEqual(
        (await store.readStream(hot)).events.map((e) => e.type),
        ['Start', 'Win', 'Also'],
      );
      const written = await collectAll(store, { after: head });
      assert.equal(written.length, 5);
      assert.equal((await store.readStream(`${cat}-bad`)).exists, false);
      assert.equal((await store.readStream(`${cat}-missing`)).exists, false);
    },
  },
];
