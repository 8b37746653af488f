import assert from 'node:assert/strict';
import { runInMessageContext } from '../../messaging/context.ts';
import { type ConformanceCase, collectAll, event, rejectsWithCode } from './context.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export const appendAndReadCases: ConformanceCase[] = [
  {
    name: 'append returns the new version and last position; stored events carry every field',
    async run({ store, streamId }) {
      const id = streamId('order');
      const before = Date.now();
      const result = await store.append(id, [
        event('OrderPlaced', { total: 30, items: [{ sku: 'a', qty: 2 }] }, { metadata: { correlationId: 'c-1' } }),
        event('OrderPaid', { amount: 30 }, { id: 'my-own-id-1', schemaVersion: 3 }),
      ]);
      assert.equal(result.streamId, id);
      assert.equal(result.version, 2);
      assert.equal(result.events.length, 2);
      assert.equal(result.position, result.events[1]?.position);
      const { events, version, exists } = await store.readStream(id);
      assert.equal(exists, true);
      assert.equal(version, 2);
      assert.deepEqual(events, result.events);
      const [placed, paid] = events;
      assert.ok(placed && paid);
      assert.match(placed.id, UUID_V7);
      assert.equal(placed.type, 'OrderPlaced');
      assert.deepEqual(placed.data, { total: 30, items: [{ sku: 'a', qty: 2 }] });
      assert.deepEqual(placed.metadata, { correlationId: 'c-1' });
      assert.equal(placed.streamId, id);
      assert.equal(placed.streamVersion, 1);
      assert.equal(placed.schemaVersion, 1);
      assert.ok(placed.recordedAt instanceof Date);
      assert.ok(placed.recordedAt.getTime() >= before - 1000 && placed.recordedAt.getTime() <= Date.now() + 1000);
      assert.equal(paid.id, 'my-own-id-1');
      assert.equal(paid.schemaVersion, 3);
      // Appended outside any handler with no correlation id: it starts an operation, its own id correlating it.
      assert.deepEqual(paid.metadata, { correlationId: 'my-own-id-1' });
      assert.ok(paid.position > placed.position);
    },
  },
  {
    name: 'an append result is a plain object: events is an own enumerable property, the same array on every read, kept by spread and JSON',
    async run({ store, streamId }) {
      const id = streamId('result');
      const first = await store.append(id, [event('A', { n: 1 })]);
      const second = await store.append(id, [event('B', { n: 2 }), event('C', { n: 3 })]);
      assert.equal(Object.getPrototypeOf(second), Object.prototype);
      assert.deepEqual(Object.keys(second).sort(), ['events', 'position', 'streamId', 'version']);
      assert.equal(second.events, second.events, 'the same array on every read');
      // Each result has its own events, whatever adapters share to build them.
      assert.deepEqual(
        first.events.map((e) => e.type),
        ['A'],
      );
      assert.deepEqual(
        second.events.map((e) => e.type),
        ['B', 'C'],
      );
      assert.deepEqual({ ...second }.events, second.events);
      assert.deepEqual(
        JSON.parse(JSON.stringify(second)).events.map((e: { position: number }) => e.position),
        second.events.map((e) => e.position),
      );
    },
  },
  {
    name: 'stream versions run contiguously from 1 across appends',
    async run({ store, streamId }) {
      const id = streamId();
      for (let i = 0; i < 5; i++) {
        await store.append(
          id,
          Array.from({ length: i + 1 }, (_, j) => event('Tick', { i, j })),
        );
      }
      const { events, version } = await store.readStream(id);
      assert.equal(version, 15);
      assert.deepEqual(
        events.map((e) => e.streamVersion),
        Array.from({ length: 15 }, (_, i) => i + 1),
      );
      const positions = events.map((e) => e.position);
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => a - b),
      );
    },
  },
  {
    name: 'readStream honours from, to, limit and direction',
    async run({ store, streamId }) {
      const id = streamId();
      await store.append(
        id,
        Array.from({ length: 10 }, (_, i) => event('N', { n: i + 1 })),
      );
      const versions = async (options: Parameters<typeof store.readStream>[1]) =>
        (await store.readStream(id, options)).events.map((e) => e.streamVersion);
      assert.deepEqual(await versions({ from: 4, to: 6 }), [4, 5, 6]);
      assert.deepEqual(await versions({ from: 8 }), [8, 9, 10]);
      assert.deepEqual(await versions({ limit: 2 }), [1, 2]);
      assert.deepEqual(await versions({ direction: 'backwards', limit: 3 }), [10, 9, 8]);
      assert.deepEqual(await versions({ direction: 'backwards', from: 2, to: 4 }), [4, 3, 2]);
      assert.deepEqual(await versions({ from: 11 }), []);
      const read = await store.readStream(id, { from: 11 });
      assert.equal(read.version, 10, 'version is the stream version even when no event is returned');
      await rejectsWithCode(store.readStream(id, { direction: 'sideways' as never }), 'VALIDATION');
      await rejectsWithCode(store.readStream(id, { from: -1 }), 'VALIDATION');
    },
  },
  {
    name: 'a stream that never existed reads as empty at version 0',
    async run({ store, streamId }) {
      const id = streamId();
      assert.deepEqual(await store.readStream(id), { streamId: id, exists: false, version: 0, events: [] });
      assert.equal(await store.streamInfo(id), undefined);
    },
  },
  {
    name: 'data round-trips through JSON: nesting, unicode, null, large numbers, dates as ISO strings',
    async run({ store, streamId }) {
      const id = streamId();
      const when = new Date('2026-01-02T03:04:05.678Z');
      const data = {
        text: 'héllo 🌍 \u2028 "quoted" \\ back',
        nested: { deep: { deeper: [1, [2, [3]], { x: null }] } },
        big: Number.MAX_SAFE_INTEGER,
        negative: -0.5,
        empty: {},
        list: [],
        when,
        optional: undefined,
      };
      await store.append(id, [event('Mixed', data, { metadata: { causationId: 'm-1', tenant: 't1', n: 3 } })]);
      const [stored] = (await store.readStream(id)).events;
      assert.deepEqual(stored?.data, {
        text: data.text,
        nested: data.nested,
        big: data.big,
        negative: -0.5,
        empty: {},
        list: [],
        when: when.toISOString(),
      });
      assert.deepEqual(stored?.metadata, { causationId: 'm-1', tenant: 't1', n: 3, correlationId: stored?.id });
      await store.append(id, [event('Scalar', 42), event('Null', null), event('Text', 'x')]);
      const rest = (await store.readStream(id, { from: 2 })).events.map((e) => e.data);
      assert.deepEqual(rest, [42, null, 'x']);
    },
  },
  {
    name: 'events returned are copies: mutating them changes nothing stored',
    async run({ store, streamId }) {
      const id = streamId();
      const input = { list: [1, 2] };
      const result = await store.append(id, [event('A', input)]);
      input.list.push(3);
      (result.events[0]?.data as { list: number[] } | undefined)?.list.push(4);
      const first = (await store.readStream(id)).events[0];
      (first?.data as { list: number[] } | undefined)?.list.push(5);
      assert.deepEqual((await store.readStream(id)).events[0]?.data, { list: [1, 2] });
    },
  },
  {
    name: 'readAll returns every event in strictly increasing position order',
    async run({ store, category }) {
      const cat = category();
      const head = await store.headPosition();
      const written: string[] = [];
      for (let i = 0; i < 20; i++) {
        const result = await store.append(`${cat}-${i % 4}`, [event('E', { i }), event('F', { i })]);
        written.push(...result.events.map((e) => e.id));
      }
      const all = await collectAll(store, { after: head, categories: [cat] });
      assert.deepEqual(
        all.map((e) => e.id),
        written,
      );
      for (let i = 1; i < all.length; i++) {
        assert.ok((all[i]?.position ?? 0) > (all[i - 1]?.position ?? 0), 'positions must strictly increase');
      }
      assert.equal(await store.headPosition(), all[all.length - 1]?.position);
    },
  },
  {
    name: 'readAll resumes after a saved position with no gap and no repeat, across pages',
    async run({ store, category }) {
      const cat = category();
      const head = await store.headPosition();
      const seen: string[] = [];
      const written: string[] = [];
      let checkpoint = head;
      for (let round = 0; round < 6; round++) {
        for (let i = 0; i < 7; i++) {
          const r = await store.append(`${cat}-${i}`, [event('E', { round, i })]);
          written.push(r.events[0]?.id as string);
        }
        // Read part of what is there, save the position, stop early.
        let taken = 0;
        for await (const e of store.readAll({ after: checkpoint, categories: [cat], batchSize: 3 })) {
          seen.push(e.id);
          checkpoint = e.position;
          if (++taken === 5) break;
        }
      }
      for await (const e of store.readAll({ after: checkpoint, categories: [cat], batchSize: 4 })) {
        seen.push(e.id);
      }
      assert.deepEqual(seen, written);
    },
  },
  {
    name: "readAll 'from' is inclusive, 'after' exclusive, 'limit' caps the count",
    async run({ store, category }) {
      const cat = category();
      const head = await store.headPosition();
      await store.append(`${cat}-1`, [event('A'), event('B'), event('C'), event('D')]);
      const all = await collectAll(store, { after: head, categories: [cat] });
      const second = all[1]?.position as number;
      assert.deepEqual(
        (await collectAll(store, { from: second, categories: [cat] })).map((e) => e.type),
        ['B', 'C', 'D'],
      );
      assert.deepEqual(
        (await collectAll(store, { after: second, categories: [cat] })).map((e) => e.type),
        ['C', 'D'],
      );
      assert.deepEqual(
        (await collectAll(store, { after: head, categories: [cat], limit: 3, batchSize: 2 })).map((e) => e.type),
        ['A', 'B', 'C'],
      );
      await rejectsWithCode(collectAll(store, { from: 1, after: 1 }), 'VALIDATION');
    },
  },
  {
    name: 'readAll filters by event type and by category',
    async run({ store, category }) {
      const orders = category('order');
      const carts = category('cart');
      const head = await store.headPosition();
      await store.append(`${orders}-1`, [event('Placed'), event('Paid')]);
      await store.append(`${carts}-1`, [event('Placed'), event('Emptied')]);
      await store.append(`${orders}-2`, [event('Placed'), event('Shipped')]);
      await store.append(`${orders}`, [event('Paid')]); // no dash: the whole id is the category
      const pick = async (options: Parameters<typeof store.readAll>[0]) =>
        (await collectAll(store, { after: head, ...options })).map((e) => `${e.streamId}:${e.type}`);
      assert.deepEqual(await pick({ categories: [orders] }), [
        `${orders}-1:Placed`,
        `${orders}-1:Paid`,
        `${orders}-2:Placed`,
        `${orders}-2:Shipped`,
        `${orders}:Paid`,
      ]);
      assert.deepEqual(await pick({ categories: [orders, carts], types: ['Placed'] }), [
        `${orders}-1:Placed`,
        `${carts}-1:Placed`,
        `${orders}-2:Placed`,
      ]);
      assert.deepEqual(await pick({ categories: [carts], types: ['Paid'] }), []);
      assert.deepEqual(await pick({ categories: [orders], types: ['Paid', 'Shipped'], batchSize: 1 }), [
        `${orders}-1:Paid`,
        `${orders}-2:Shipped`,
        `${orders}:Paid`,
      ]);
    },
  },
  {
    name: 'a category is the part of the stream id before the first dash',
    async run({ store, category }) {
      const cat = category();
      const head = await store.headPosition();
      await store.append(`${cat}-a-b-c`, [event('A')]);
      await store.append(`${cat}x-a`, [event('B')]);
      const found = await collectAll(store, { after: head, categories: [cat] });
      assert.deepEqual(
        found.map((e) => e.streamId),
        [`${cat}-a-b-c`],
      );
    },
  },
  {
    name: 'inside a message handler, appended events inherit its correlation id and name it as their cause',
    async run({ store, streamId }) {
      const id = streamId();
      const handled = { id: 'msg-42', metadata: { correlationId: 'corr-7' } };
      await runInMessageContext(handled, () =>
        store.append(id, [event('A'), event('B', {}, { metadata: { causationId: 'explicit' } })]),
      );
      const [a, b] = (await store.readStream(id)).events;
      assert.deepEqual(a?.metadata, { correlationId: 'corr-7', causationId: 'msg-42' });
      assert.deepEqual(b?.metadata, { causationId: 'explicit', correlationId: 'corr-7' });
    },
  },
];
