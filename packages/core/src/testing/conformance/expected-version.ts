import assert from 'node:assert/strict';
import { type ConcurrencyError, isConcurrencyError } from '../../errors/index.ts';
import { type ConformanceCase, event, rejectsWithCode } from './context.ts';

const CONFLICT = 'CONCURRENCY_CONFLICT';

export const expectedVersionCases: ConformanceCase[] = [
  {
    name: "expectedVersion 'no-stream' (and 0) accepts a new stream and rejects an existing one",
    async run({ store, streamId }) {
      const id = streamId();
      const result = await store.append(id, [event('Opened')], { expectedVersion: 'no-stream' });
      assert.equal(result.version, 1);
      const error = await rejectsWithCode<ConcurrencyError>(
        store.append(id, [event('Opened')], { expectedVersion: 'no-stream' }),
        CONFLICT,
      );
      assert.equal(error.expectedVersion, 'no-stream');
      assert.equal(error.actualVersion, 1);
      assert.equal(error.streamId, id);
      const zero = streamId();
      assert.equal((await store.append(zero, [event('Opened')], { expectedVersion: 0 })).version, 1);
      await rejectsWithCode(store.append(zero, [event('Again')], { expectedVersion: 0 }), CONFLICT);
    },
  },
  {
    name: 'a numeric expectedVersion is accepted only when it equals the current version',
    async run({ store, streamId }) {
      const id = streamId();
      await store.append(id, [event('A'), event('B'), event('C')]);
      for (const wrong of [0, 1, 2, 4, 100]) {
        const error = await rejectsWithCode<ConcurrencyError>(
          store.append(id, [event('X')], { expectedVersion: wrong }),
          CONFLICT,
        );
        assert.equal(error.expectedVersion, wrong);
        assert.equal(error.actualVersion, 3);
        assert.equal(error.retryable, true);
        assert.ok(isConcurrencyError(error));
      }
      const ok = await store.append(id, [event('D')], { expectedVersion: 3 });
      assert.equal(ok.version, 4);
      assert.equal((await store.readStream(id)).version, 4);
    },
  },
  {
    name: "expectedVersion 'stream-exists' rejects a missing stream and accepts an existing one",
    async run({ store, streamId }) {
      const id = streamId();
      const error = await rejectsWithCode<ConcurrencyError>(
        store.append(id, [event('A')], { expectedVersion: 'stream-exists' }),
        CONFLICT,
      );
      assert.equal(error.actualVersion, 0);
      assert.equal((await store.readStream(id)).exists, false);
      await store.append(id, [event('A')]);
      assert.equal((await store.append(id, [event('B')], { expectedVersion: 'stream-exists' })).version, 2);
    },
  },
  {
    name: "expectedVersion 'any' (the default) never conflicts",
    async run({ store, streamId }) {
      const id = streamId();
      assert.equal((await store.append(id, [event('A')], { expectedVersion: 'any' })).version, 1);
      assert.equal((await store.append(id, [event('B')])).version, 2);
      assert.equal((await store.append(id, [event('C')], { expectedVersion: 'any' })).version, 3);
    },
  },
  {
    name: 'an expectedVersion of none of the four forms is a ValidationError and writes nothing',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      for (const bad of [-1, 1.5, Number.NaN, 'latest', null, '3', {}]) {
        await rejectsWithCode(store.append(id, [event('A')], { expectedVersion: bad as never }), 'VALIDATION');
      }
      assert.equal(await store.headPosition(), head);
      assert.equal((await store.readStream(id)).exists, false);
    },
  },
];
