import assert from 'node:assert/strict';
import type { ValidationError } from '../../errors/index.ts';
import type { StoreLimits } from '../../store/validation.ts';
import { assertUnchanged, type ConformanceCase, collectAll, event, rejectsWithCode } from './context.ts';

const pathsOf = (error: ValidationError) => error.issues.map((issue) => issue.path);

/** Options are checked like input: unknown names and wrong kinds are ValidationErrors, before anything is written. */
export const optionCases: ConformanceCase[] = [
  {
    name: "a misspelt append option ('expectVersion') is a ValidationError suggesting 'expectedVersion', and writes nothing",
    async run({ store, streamId }) {
      const id = streamId();
      await store.append(id, [event('A')]);
      const head = await store.headPosition();
      // The stream is at version 1: had the option been read as meant, this append would conflict.
      const error = await rejectsWithCode<ValidationError>(
        store.append(id, [event('B')], { expectVersion: 0 } as never),
        'VALIDATION',
      );
      assert.deepEqual(pathsOf(error), ['append options.expectVersion']);
      assert.match(error.message, /did you mean 'expectedVersion'/);
      await assertUnchanged(store, head, id, 1);
    },
  },
  {
    name: 'append options that are not an object, or of the wrong kind, are ValidationErrors listed with the events',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      for (const options of [null, 'no-stream', 5, []]) {
        const error = await rejectsWithCode<ValidationError>(
          store.append(id, [event('A')], options as never),
          'VALIDATION',
        );
        assert.deepEqual(pathsOf(error), ['append options']);
      }
      const both = await rejectsWithCode<ValidationError>(
        store.append(id, [event('')], { expectedVersion: '1' } as never),
        'VALIDATION',
      );
      assert.deepEqual(pathsOf(both).sort(), ['events[0].type', 'expectedVersion']);
      await assertUnchanged(store, head, id, 0);
    },
  },
  {
    name: 'unknown or ill-typed readStream and readAll options are ValidationErrors naming the option',
    async run({ store, streamId }) {
      const id = streamId();
      await store.append(id, [event('A')]);
      const stream = await rejectsWithCode<ValidationError>(store.readStream(id, { form: 1 } as never), 'VALIDATION');
      assert.deepEqual(pathsOf(stream), ['readStream options.form']);
      await rejectsWithCode(store.readStream(id, null as never), 'VALIDATION');
      await rejectsWithCode(store.readStream(id, { limit: '5' } as never), 'VALIDATION');
      const all = await rejectsWithCode<ValidationError>(collectAll(store, { afer: 0 } as never), 'VALIDATION');
      assert.deepEqual(pathsOf(all), ['readAll options.afer']);
      await rejectsWithCode(collectAll(store, null as never), 'VALIDATION');
      await rejectsWithCode(collectAll(store, { batchSize: 0 }), 'VALIDATION');
    },
  },
  {
    name: 'unknown deleteStream options are ValidationErrors, and the stream stays',
    async run({ store, streamId }) {
      const id = streamId();
      await store.append(id, [event('A')]);
      const error = await rejectsWithCode<ValidationError>(
        store.deleteStream(id, { expectVersion: 3 } as never),
        'VALIDATION',
      );
      assert.deepEqual(pathsOf(error), ['deleteStream options.expectVersion']);
      await rejectsWithCode(store.deleteStream(id, null as never), 'VALIDATION');
      await rejectsWithCode(store.deleteStream(id, { mode: 'soft', hard: true } as never), 'VALIDATION');
      assert.equal((await store.readStream(id)).version, 1);
    },
  },
  {
    name: 'a store refuses unknown or ill-typed limits when created',
    async run({ createStore }) {
      const cases: [Partial<StoreLimits>, string][] = [
        [{ maxEventByte: 10 } as never, 'limits.maxEventByte'],
        [{ maxEventBytes: '10' } as never, 'limits.maxEventBytes'],
        [{ maxStreamIdLength: 0 }, 'limits.maxStreamIdLength'],
        // Past it PostgreSQL's indexes refuse some ids of that length (3 bytes a character, incompressible).
        [{ maxStreamIdLength: 601 }, 'limits.maxStreamIdLength'],
      ];
      for (const [limits, path] of cases) {
        const error = await rejectsWithCode<ValidationError>(
          Promise.resolve().then(() => createStore({ limits })),
          'VALIDATION',
        );
        assert.ok(
          pathsOf(error).some((p) => p.endsWith(path)),
          `expected an issue at …${path}, got ${pathsOf(error).join(', ')}`,
        );
      }
    },
  },
];
