import assert from 'node:assert/strict';
import type { ValidationError } from '../../errors/index.ts';
import type { EventToAppend } from '../../store/types.ts';
import { assertUnchanged, type ConformanceCase, event, rejectsWithCode } from './context.ts';
import { optionCases } from './options.ts';

function cyclic(): unknown {
  const node: { self?: unknown } = {};
  node.self = node;
  return node;
}

/** `length` CJK characters (3 UTF-8 bytes each) in an order no compression shortens. */
function incompressible(length: number): string {
  return Array.from({ length }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20000))).join('');
}

export const validationCases: ConformanceCase[] = [
  {
    name: 'invalid stream ids are ValidationErrors and write nothing',
    async run({ store }) {
      const head = await store.headPosition();
      const bad: unknown[] = [
        '',
        'x'.repeat(201),
        'a\u0000b',
        'line\nbreak',
        'tab\there',
        'del\u007f',
        42,
        null,
        undefined,
      ];
      for (const id of bad) {
        const error = await rejectsWithCode<ValidationError>(store.append(id as string, [event('A')]), 'VALIDATION');
        assert.equal(error.issues[0]?.path, 'streamId');
        assert.equal(error.retryable, false);
      }
      await rejectsWithCode(store.readStream(''), 'VALIDATION');
      await assertUnchanged(store, head);
    },
  },
  {
    name: 'the stream id length limit is configurable',
    async run({ createStore, streamId }) {
      const store = await createStore({ limits: { maxStreamIdLength: 300 } });
      const head = await store.headPosition();
      const long = `${streamId()}-${'y'.repeat(250)}`;
      assert.equal((await store.append(long, [event('A')])).version, 1);
      await rejectsWithCode(store.append('z'.repeat(301), [event('A')]), 'VALIDATION');
      assert.equal(await store.headPosition(), head + 1);
      // The highest limit: every store keeps an id of that length, of characters of 3 UTF-8 bytes that do not compress.
      const widest = await createStore({ limits: { maxStreamIdLength: 600 } });
      const prefix = `${streamId()}-`;
      const wide = prefix + incompressible(600 - prefix.length);
      assert.equal((await widest.append(wide, [event('A')])).version, 1);
      assert.equal((await widest.readStream(wide)).events[0]?.streamId, wide);
    },
  },
  {
    name: 'empty or non-string event types, and events that are not objects, are ValidationErrors',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      for (const events of [
        [event('')],
        [{ type: 7, data: {} }],
        [{ data: {} }],
        [event('ctl\u0001')],
        [null],
        ['OrderPlaced'],
        [],
        'not-an-array',
        [event('A', {}, { schemaVersion: 0 })],
        [event('A', {}, { id: '' })],
        [{ type: 'NoData' }],
        [event('A', {}, { metadata: 'text' as never })],
        [event('A', {}, { metadata: { correlationId: 5 as unknown as string } })],
      ]) {
        await rejectsWithCode(store.append(id, events as never), 'VALIDATION');
      }
      await assertUnchanged(store, head, id, 0);
    },
  },
  {
    name: 'a hole in the events array is a ValidationError naming it, and nothing of the append is written',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      const events = [event('A'), event('C')];
      events.length = 3;
      events[2] = event('C');
      delete (events as unknown[])[1];
      const error = await rejectsWithCode<ValidationError>(store.append(id, events), 'VALIDATION');
      assert.deepEqual(
        error.issues.map((issue) => issue.path),
        ['events[1]'],
      );
      await assertUnchanged(store, head, id, 0);
    },
  },
  {
    name: 'data JSON cannot carry faithfully is a ValidationError naming the path',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      const cases: [unknown, string][] = [
        [{ amount: 10n }, 'events[0].data.amount'],
        [{ fn: () => 1 }, 'events[0].data.fn'],
        [cyclic(), 'events[0].data.self'],
        [{ ratio: Number.NaN }, 'events[0].data.ratio'],
        [{ ratio: Number.POSITIVE_INFINITY }, 'events[0].data.ratio'],
        [{ list: [1, undefined] }, 'events[0].data.list[1]'],
        [{ tags: new Set(['a']) }, 'events[0].data.tags'],
        [{ byId: new Map([['a', 1]]) }, 'events[0].data.byId'],
        [{ s: Symbol('x') }, 'events[0].data.s'],
        [{ deep: { deeper: [{ n: 1n }] } }, 'events[0].data.deep.deeper[0].n'],
      ];
      for (const [data, path] of cases) {
        const error = await rejectsWithCode<ValidationError>(store.append(id, [event('A', data)]), 'VALIDATION');
        assert.equal(error.issues[0]?.path, path, error.message);
      }
      const metaError = await rejectsWithCode<ValidationError>(
        store.append(id, [event('A', {}, { metadata: { n: 5n } })]),
        'VALIDATION',
      );
      assert.equal(metaError.issues[0]?.path, 'events[0].metadata.n');
      await assertUnchanged(store, head, id, 0);
      // A shared (non-cyclic) reference is fine.
      const shared = { x: 1 };
      assert.equal((await store.append(id, [event('A', { a: shared, b: shared })])).version, 1);
    },
  },
  {
    name: 'events over the size limit (default 1 MiB, configurable) are ValidationErrors',
    async run({ store, createStore, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      const justOver = 'x'.repeat(1024 * 1024);
      await rejectsWithCode(store.append(id, [event('Big', { blob: justOver })]), 'VALIDATION');
      await rejectsWithCode(store.append(id, [event('Small'), event('Big', justOver)]), 'VALIDATION');
      await assertUnchanged(store, head, id, 0);
      // The limit counts the metadata too, the correlation id stamped on a root event included (56 bytes).
      assert.equal((await store.append(id, [event('Fits', 'x'.repeat(1024 * 1024 - 70))])).version, 1);

      const small = await createStore({ limits: { maxEventBytes: 1000 } });
      const smallId = streamId();
      await rejectsWithCode(small.append(smallId, [event('A', 'é'.repeat(500))]), 'VALIDATION');
      assert.equal((await small.append(smallId, [event('A', 'e'.repeat(500))])).version, 1);
    },
  },
  {
    name: 'lone surrogates (ill-formed UTF-16) in ids, types, metadata keys and data are ValidationErrors naming them',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      // On a database these would be stored altered: 'acct-\uD800' and 'acct-\uDBFF' would be one stream.
      for (const bad of [`${id}-\uD800`, `${id}-\uDBFF`, `\uDC00${id}`]) {
        const error = await rejectsWithCode<ValidationError>(store.append(bad, [event('A')]), 'VALIDATION');
        assert.equal(error.issues[0]?.path, 'streamId');
        assert.match(error.issues[0]?.message ?? '', /lone surrogate/);
        await rejectsWithCode(store.readStream(bad), 'VALIDATION');
      }
      const cases: [unknown[], string][] = [
        [[event('Order\uD800')], 'events[0].type'],
        [[event('A', {}, { id: 'e-\uDFFF' })], 'events[0].id'],
        [[event('A', { name: 'a\uD800b' })], 'events[0].data.name'],
        [[event('A', { list: ['ok', '\uDC00'] })], 'events[0].data.list[1]'],
        [[event('A', { 'k\uD800': 1 })], 'events[0].data'],
        [[event('A', {}, { metadata: { 'tenant\uD800': 'x' } })], 'events[0].metadata'],
        [[event('A', {}, { metadata: { correlationId: 'c-\uD800' } })], 'events[0].metadata.correlationId'],
      ];
      for (const [events, path] of cases) {
        const error = await rejectsWithCode<ValidationError>(store.append(id, events as never), 'VALIDATION');
        assert.equal(error.issues[0]?.path, path, error.message);
      }
      await rejectsWithCode(
        (async () => {
          for await (const _ of store.readAll({ types: ['A\uD800'] })) break;
        })(),
        'VALIDATION',
      );
      await assertUnchanged(store, head, id, 0);
    },
  },
  {
    name: 'a NUL (U+0000) in a string or key of data or metadata is a ValidationError naming it (PostgreSQL cannot index or query JSON holding one)',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      const cases: [EventToAppend, string][] = [
        [event('A', { name: 'a\u0000b' }), 'events[0].data.name'],
        [event('A', { list: ['ok', '\u0000'] }), 'events[0].data.list[1]'],
        [event('A', { 'k\u0000': 1 }), 'events[0].data'],
        [event('A', '\u0000'), 'events[0].data'],
        [event('A', {}, { metadata: { tenant: 'a\u0000' } }), 'events[0].metadata.tenant'],
        [event('A', {}, { metadata: { nested: { deeper: ['\u0000'] } } }), 'events[0].metadata.nested.deeper[0]'],
        [event('A', {}, { metadata: { 'k\u0000': 'x' } }), 'events[0].metadata'],
      ];
      for (const [appended, path] of cases) {
        const error = await rejectsWithCode<ValidationError>(store.append(id, [appended]), 'VALIDATION');
        assert.equal(error.issues[0]?.path, path, error.message);
        assert.match(error.issues[0]?.message ?? '', /U\+0000/, error.message);
      }
      await assertUnchanged(store, head, id, 0);
      // Other control characters are JSON like any other text.
      const data = { text: 'tab\there\u0001\u007f' };
      await store.append(id, [event('A', data, { metadata: { note: 'a\u0001' } })]);
      const { events } = await store.readStream(id);
      assert.deepEqual(events[0]?.data, data);
      assert.equal(events[0]?.metadata.note, 'a\u0001');
    },
  },
  {
    name: 'text outside the BMP (surrogate pairs) round-trips exactly in ids, types, metadata and data',
    async run({ store, streamId }) {
      const id = `${streamId()}-𝄞😀`;
      const data = { note: 'fragile 📦', '𝄞key': ['😀', '\u{10FFFF}'] };
      const metadata = { who: '👩‍💻' };
      await store.append(id, [event('Shipped🚚', data, { metadata })]);
      const { events } = await store.readStream(id);
      assert.equal(events[0]?.streamId, id);
      assert.equal(events[0]?.type, 'Shipped🚚');
      assert.deepEqual(events[0]?.data, data);
      assert.equal(events[0]?.metadata.who, metadata.who);
    },
  },
  {
    name: 'metadata ids and trace context that are not strings are ValidationErrors naming them (a relay could not publish them)',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      for (const key of ['correlationId', 'causationId', 'traceparent', 'tracestate']) {
        const error = await rejectsWithCode<ValidationError>(
          store.append(id, [event('A', {}, { metadata: { [key]: 7 } })]),
          'VALIDATION',
        );
        assert.equal(error.issues[0]?.path, `events[0].metadata.${key}`);
        assert.equal(error.issues[0]?.message, 'must be a string, got number 7');
        const control = await rejectsWithCode<ValidationError>(
          store.append(id, [event('A', {}, { metadata: { [key]: 'a\u0000b' } })]),
          'VALIDATION',
        );
        assert.equal(control.issues[0]?.path, `events[0].metadata.${key}`);
        assert.equal(control.issues[0]?.message, 'must not contain control characters');
      }
      await assertUnchanged(store, head, id, 0);
    },
  },
  {
    name: 'a correlationId or causationId over 256 characters is a ValidationError naming it (PostgreSQL indexes the correlation id)',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      // Incompressible text: 2,900 of these characters are over PostgreSQL's btree row limit.
      const text = incompressible;
      for (const key of ['correlationId', 'causationId']) {
        for (const length of [257, 2900]) {
          const error = await rejectsWithCode<ValidationError>(
            store.append(id, [event('A', {}, { metadata: { [key]: text(length) } })]),
            'VALIDATION',
          );
          assert.equal(error.issues[0]?.path, `events[0].metadata.${key}`);
          assert.equal(error.issues[0]?.message, `is ${length} characters long; the limit is 256`);
        }
      }
      await assertUnchanged(store, head, id, 0);
      const longest = { correlationId: text(256), causationId: text(256) };
      await store.append(id, [event('A', {}, { metadata: longest })]);
      const { events } = await store.readStream(id);
      assert.equal(events[0]?.metadata.correlationId, longest.correlationId);
      assert.equal(events[0]?.metadata.causationId, longest.causationId);
    },
  },
  {
    name: 'a schema version past 2147483647, or data whose toJSON gives nothing or throws, is a ValidationError naming it',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      const cases: [EventToAppend, string][] = [
        [event('A', {}, { schemaVersion: 2 ** 31 }), 'events[0].schemaVersion'],
        [event('A', { toJSON: () => undefined }), 'events[0].data'],
        [
          event('A', {
            toJSON: () => {
              throw new Error('not ready');
            },
          }),
          'events[0].data',
        ],
        [event('A', { amount: { toJSON: () => 10n } }), 'events[0].data.amount'],
      ];
      for (const [appended, path] of cases) {
        const error = await rejectsWithCode<ValidationError>(store.append(id, [appended]), 'VALIDATION');
        assert.equal(error.issues[0]?.path, path, error.message);
      }
      assert.equal((await store.append(id, [event('A', {}, { schemaVersion: 2 ** 31 - 1 })])).version, 1);
      assert.equal(await store.headPosition(), head + 1);
    },
  },
  {
    name: 'what a toJSON returns is checked like the rest of data: a lone surrogate, a NUL or a NaN in it is a ValidationError naming it',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      const half = '😀'.slice(0, 1);
      const cases: [unknown, string, RegExp][] = [
        [{ title: { toJSON: () => `ab${half}` } }, 'events[0].data.title', /lone surrogate/],
        [{ title: { toJSON: () => 'a\u0000' } }, 'events[0].data.title', /U\+0000/],
        [{ title: { toJSON: () => ({ [`k${half}`]: 1 }) } }, 'events[0].data.title', /key that holds a lone surrogate/],
        [{ title: { toJSON: () => ({ n: Number.NaN }) } }, 'events[0].data.title.n', /NaN/],
        [{ list: [{ toJSON: () => undefined }] }, 'events[0].data.list[0]', /undefined/],
        [{ toJSON: () => [new Map()] }, 'events[0].data[0]', /Map/],
      ];
      for (const [data, path, message] of cases) {
        const error = await rejectsWithCode<ValidationError>(store.append(id, [event('A', data)]), 'VALIDATION');
        assert.equal(error.issues[0]?.path, path, error.message);
        assert.match(error.issues[0]?.message ?? '', message);
      }
      const metadata = await rejectsWithCode<ValidationError>(
        store.append(id, [event('A', {}, { metadata: { who: { toJSON: () => `x${half}` } } })]),
        'VALIDATION',
      );
      assert.equal(metadata.issues[0]?.path, 'events[0].metadata.who');
      await assertUnchanged(store, head, id, 0);
      // As JSON.stringify does: a property whose toJSON gives undefined is absent, a Date is its ISO string.
      const at = new Date(0);
      await store.append(id, [
        event('A', { at, gone: { toJSON: () => undefined }, shown: { toJSON: () => ({ n: 1 }) } }),
      ]);
      const { events } = await store.readStream(id);
      assert.deepEqual(events[0]?.data, { at: at.toISOString(), shown: { n: 1 } });
    },
  },
  {
    name: 'data or metadata nested deeper than 256 levels of arrays and objects is a ValidationError naming where (not a stack overflow)',
    async run({ store, streamId }) {
      const id = streamId();
      const head = await store.headPosition();
      const arrays = (levels: number) => {
        let value: unknown = 1;
        for (let i = 0; i < levels; i++) value = [value];
        return value;
      };
      const objects = (levels: number) => {
        let value: unknown = 1;
        for (let i = 0; i < levels; i++) value = { a: value };
        return value;
      };
      const cases: [EventToAppend, string][] = [
        [event('A', arrays(257)), `events[0].data${'[0]'.repeat(256)}`],
        [event('A', arrays(3000)), `events[0].data${'[0]'.repeat(256)}`],
        [event('A', { deep: objects(3000) }), `events[0].data.deep${'.a'.repeat(255)}`],
        [event('A', {}, { metadata: { deep: objects(3000) } }), `events[0].metadata.deep${'.a'.repeat(255)}`],
      ];
      for (const [appended, path] of cases) {
        const error = await rejectsWithCode<ValidationError>(store.append(id, [appended]), 'VALIDATION');
        assert.equal(error.issues[0]?.path, path);
        assert.match(error.issues[0]?.message ?? '', /256 levels/);
      }
      await assertUnchanged(store, head, id, 0);
      await store.append(id, [event('A', arrays(256), { metadata: { deep: objects(255) } })]);
      const { events } = await store.readStream(id);
      assert.deepEqual(events[0]?.data, arrays(256));
      assert.deepEqual(events[0]?.metadata.deep, objects(255));
    },
  },
  {
    name: 'errors describe what they got: "got undefined", "got an object", "got a Map"',
    async run({ store, streamId }) {
      const undefinedId = await rejectsWithCode<ValidationError>(
        store.append(undefined as unknown as string, [event('A')]),
        'VALIDATION',
      );
      assert.equal(undefinedId.issues[0]?.message, 'must be a string, got undefined');
      const objectEvents = await rejectsWithCode<ValidationError>(store.append(streamId(), {} as never), 'VALIDATION');
      assert.equal(objectEvents.issues[0]?.message, 'must be an array, got an object');
      const mapMetadata = await rejectsWithCode<ValidationError>(
        store.append(streamId(), [event('A', {}, { metadata: new Map() as never })]),
        'VALIDATION',
      );
      assert.equal(mapMetadata.issues[0]?.message, 'must be a plain object, got a Map');
    },
  },
  ...optionCases,
];
