import assert from 'node:assert/strict';
import { type ConformanceCase, event, rejectsWithCode } from './context.ts';

export const lifecycleCases: ConformanceCase[] = [
  {
    name: 'close finishes appends already accepted, then every call throws StoreClosedError',
    async run({ createStore, streamId }) {
      const store = await createStore();
      const id = streamId();
      const pending = [store.append(id, [event('A')]), store.append(id, [event('B')])];
      await store.close();
      const settled = await Promise.allSettled(pending);
      for (const result of settled)
        assert.equal(result.status, 'fulfilled', String((result as PromiseRejectedResult).reason));
      await rejectsWithCode(store.append(id, [event('C')]), 'STORE_CLOSED');
      await rejectsWithCode(store.readStream(id), 'STORE_CLOSED');
      await rejectsWithCode(store.headPosition(), 'STORE_CLOSED');
      await rejectsWithCode(
        (async () => {
          for await (const _ of store.readAll()) break;
        })(),
        'STORE_CLOSED',
      );
      await store.close(); // twice is fine
    },
  },
];
