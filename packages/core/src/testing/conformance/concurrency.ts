import assert from 'node:assert/strict';
import type { Decider } from '../../commands/decider.ts';
import { handleCommand } from '../../commands/handle-command.ts';
import type { Event } from '../../store/types.ts';
import { type ConformanceCase, collectAll, event } from './context.ts';

type Added = Event<'Added', { by: string; n: number }>;
const counter: Decider<{ total: number; count: number }, { by: string; n: number }, Added> = {
  initialState: () => ({ total: 0, count: 0 }),
  evolve: (state, e) => ({ total: state.total + e.data.n, count: state.count + 1 }),
  decide: (command) => [{ type: 'Added', data: command }],
};
const quickRetry = { maxAttempts: 200, initialBackoffMs: 1, maxBackoffMs: 5 };

export const concurrencyCases: ConformanceCase[] = [
  {
    name: '16 concurrent handleCommand calls on one stream lose no update and duplicate no version',
    async run({ store, streamId }) {
      const id = streamId();
      const writers = Array.from({ length: 16 }, (_, w) =>
        (async () => {
          for (let i = 0; i < 5; i++) await handleCommand(store, id, { by: `w${w}`, n: 1 }, counter, quickRetry);
        })(),
      );
      await Promise.all(writers);
      const { events, version } = await store.readStream(id);
      assert.equal(version, 80);
      assert.deepEqual(
        events.map((e) => e.streamVersion),
        Array.from({ length: 80 }, (_, i) => i + 1),
      );
      for (let w = 0; w < 16; w++) {
        assert.equal(events.filter((e) => (e.data as { by: string }).by === `w${w}`).length, 5);
      }
    },
  },
  {
    name: '16 concurrent writers on their own streams: every append succeeds',
    async run({ store, category }) {
      const cat = category();
      const head = await store.headPosition();
      const errors: unknown[] = [];
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          for (let i = 0; i < 10; i++) {
            await store
              .append(`${cat}-${w}`, [event('E', { w, i })], { expectedVersion: i })
              .catch((e) => errors.push(e));
          }
        }),
      );
      assert.deepEqual(errors, []);
      const all = await collectAll(store, { after: head, categories: [cat] });
      assert.equal(all.length, 160);
      assert.equal(new Set(all.map((e) => e.position)).size, 160);
      for (let w = 0; w < 16; w++) {
        assert.deepEqual(
          all.filter((e) => e.streamId === `${cat}-${w}`).map((e) => (e.data as { i: number }).i),
          [...Array(10).keys()],
        );
      }
    },
  },
  {
    name: '16 writers on 8 hot streams through handleCommand: no error but retried conflicts',
    async run({ store, category }) {
      const cat = category();
      const errors: unknown[] = [];
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          for (let i = 0; i < 10; i++) {
            await handleCommand(store, `${cat}-${w % 8}`, { by: `w${w}`, n: 1 }, counter, quickRetry).catch((e) =>
              errors.push(e),
            );
          }
        }),
      );
      assert.deepEqual(errors, []);
      for (let s = 0; s < 8; s++) {
        const { version, events } = await store.readStream(`${cat}-${s}`);
        assert.equal(version, 20);
        assert.equal(new Set(events.map((e) => e.id)).size, 20);
      }
    },
  },
  {
    name: 'a reader paging through readAll while writers append sees a prefix of the log, in order, once',
    async run({ store, category }) {
      const cat = category();
      const head = await store.headPosition();
      let writing = true;
      const writer = (async () => {
        for (let i = 0; i < 200; i++) await store.append(`${cat}-${i % 5}`, [event('E', { i })]);
        writing = false;
      })();
      const seen: number[] = [];
      let checkpoint = head;
      const deadline = Date.now() + 20_000;
      while ((writing || seen.length < 200) && Date.now() < deadline) {
        for await (const e of store.readAll({ after: checkpoint, categories: [cat], batchSize: 7 })) {
          seen.push((e.data as { i: number }).i);
          checkpoint = e.position;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      await writer;
      assert.deepEqual(seen, [...Array(200).keys()]);
    },
  },
];
