import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type } from 'arktype';
import * as v from 'valibot';
import { z } from 'zod';
import type { SchemaError, UpcastError, ValidationError } from '../errors/index.ts';
import { createMessage, type Message, messageFromEvent } from '../messaging/message.ts';
import type { RecordedEvent } from '../store/types.ts';
import { decodeEvent, decodeMessage } from './decode.ts';
import { defineEvent, defineMessage, type EventOfDefinition } from './define.ts';
import { createSchemaRegistry } from './registry.ts';

const zodPlaced = z.object({
  orderId: z.string(),
  amount: z.object({ value: z.number().nonnegative(), currency: z.string().length(3) }),
});
const valibotPlaced = v.object({
  orderId: v.string(),
  amount: v.object({ value: v.pipe(v.number(), v.minValue(0)), currency: v.pipe(v.string(), v.length(3)) }),
});
const arkPlaced = type({ orderId: 'string', amount: { value: 'number >= 0', currency: 'string == 3' } });

const upcasters = {
  1: (v1: { orderId: string; total: number }) => ({ ...v1, currency: 'EUR' }),
  2: (v2: { orderId: string; total: number; currency: string }) => ({
    orderId: v2.orderId,
    amount: { value: v2.total, currency: v2.currency },
  }),
};

const libraries = {
  'zod 4': zodPlaced,
  'valibot 1': valibotPlaced,
  'arktype 2': arkPlaced,
};

/** The message of the ValidationError `work` throws or rejects with. */
async function validationError(work: () => unknown): Promise<ValidationError> {
  try {
    await work();
  } catch (error) {
    assert.equal((error as { code?: string }).code, 'VALIDATION', String(error));
    return error as ValidationError;
  }
  assert.fail('expected a ValidationError');
}

const recorded = (type: string, data: unknown, schemaVersion: number): RecordedEvent => ({
  id: 'e-1',
  type,
  data,
  metadata: {},
  streamId: 'order-1',
  streamVersion: 1,
  position: 1,
  recordedAt: new Date(0),
  schemaVersion,
});

describe('createSchemaRegistry: checked at start', () => {
  const schema = zodPlaced;
  const cases: [string, () => unknown, RegExp][] = [
    [
      'a type defined twice in one kind',
      () =>
        createSchemaRegistry([
          defineEvent({ type: 'A', version: 1, schema }),
          defineEvent({ type: 'A', version: 1, schema }),
        ]),
      /definitions\[1\]\.type: event type 'A' is defined twice/,
    ],
    [
      'a version below 1',
      () => createSchemaRegistry([defineEvent({ type: 'A', version: 0, schema })]),
      /version: 'A': must be an integer >= 1, got number 0/,
    ],
    [
      'a version that is not an integer',
      () => createSchemaRegistry([defineEvent({ type: 'A', version: 1.5, schema })]),
      /version: 'A': must be an integer >= 1/,
    ],
    [
      'a missing upcaster step',
      () => createSchemaRegistry([defineEvent({ type: 'A', version: 3, schema, upcasters: { 1: (d: unknown) => d } })]),
      /'A' is at version 3: the upcaster from version 2 to 3 is missing/,
    ],
    [
      'an upcaster for the current version or later',
      () =>
        createSchemaRegistry([
          defineEvent({ type: 'A', version: 2, schema, upcasters: { 1: (d: unknown) => d, 2: (d: unknown) => d } }),
        ]),
      /upcasters\.2: 'A': an upcaster reads version 2, which is not older than the current version 2/,
    ],
    [
      'an upcaster that is not a function',
      () => createSchemaRegistry([defineEvent({ type: 'A', version: 2, schema, upcasters: { 1: 'no' as never } })]),
      /upcasters\.1: 'A': must be a function/,
    ],
    [
      'a schema that is not a Standard Schema',
      () => createSchemaRegistry([defineEvent({ type: 'A', version: 1, schema: {} as never })]),
      /schema: 'A': must be a Standard Schema v1/,
    ],
    [
      'something not made by defineEvent',
      () => createSchemaRegistry([{ type: 'A' } as never]),
      /definitions\[0\]: must be made by defineEvent or defineMessage/,
    ],
    ['an unknown option', () => createSchemaRegistry([], { unknown: true } as never), /unknown/],
    [
      "unknownTypes other than 'pass' or 'error'",
      () => createSchemaRegistry([], { unknownTypes: 'drop' as never }),
      /unknownTypes: must be one of 'pass', 'error'/,
    ],
  ];
  for (const [name, create, message] of cases) {
    it(`refuses ${name}`, () =>
      assert.throws(create, (error: ValidationError) => error.code === 'VALIDATION' && message.test(error.message)));
  }

  it('lists every problem of every definition in one error', () => {
    const error = (() => {
      try {
        createSchemaRegistry([
          defineEvent({ type: 'A', version: 3, schema }),
          defineEvent({ type: 'B', version: -1, schema }),
          defineEvent({ type: 'A', version: 1, schema }),
        ]);
      } catch (e) {
        return e as ValidationError;
      }
      assert.fail('expected an error');
    })();
    assert.deepEqual(
      error.issues.map((i) => i.path),
      ['definitions[0].upcasters', 'definitions[0].upcasters', 'definitions[1].version', 'definitions[2].type'],
    );
  });

  it('lets an event and a message share a type name', () => {
    const registry = createSchemaRegistry([
      defineEvent({ type: 'A', version: 1, schema }),
      defineMessage({ type: 'A', version: 2, schema, upcasters: { 1: (d: unknown) => d } }),
    ]);
    assert.deepEqual(
      registry.definitions().map((d) => [d.kind, d.type, d.version]),
      [
        ['event', 'A', 1],
        ['message', 'A', 2],
      ],
    );
  });
});

for (const [library, schema] of Object.entries(libraries)) {
  describe(`encode and decode with ${library}`, () => {
    const OrderPlaced = defineEvent({ type: 'OrderPlaced', version: 3, schema, upcasters });
    const registry = createSchemaRegistry([OrderPlaced]);

    it('encodes valid data with the current version', async () => {
      const data = { orderId: 'o-1', amount: { value: 3, currency: 'EUR' } };
      assert.deepEqual(await registry.encode('event', 'OrderPlaced', data), { data, schemaVersion: 3 });
    });

    it('refuses invalid data with one ValidationError naming every issue by path', async () => {
      const error = await validationError(() =>
        registry.encode('event', 'OrderPlaced', { orderId: 1, amount: { value: -1, currency: 'EURO' } }),
      );
      assert.deepEqual(error.issues.map((i) => i.path).sort(), [
        'data.amount.currency',
        'data.amount.value',
        'data.orderId',
      ]);
    });

    it('upcasts a v1 event to v3 through every step', async () => {
      const event = await decodeEvent(registry, recorded('OrderPlaced', { orderId: 'o-1', total: 30 }, 1));
      assert.deepEqual(event.data, { orderId: 'o-1', amount: { value: 30, currency: 'EUR' } });
      assert.equal(event.schemaVersion, 3);
    });
  });
}

describe('asynchronous validators are awaited', () => {
  const known = async (sku: string) => {
    await new Promise((resolve) => setImmediate(resolve));
    return sku.startsWith('SKU-');
  };
  const schemas = {
    zod: z.object({ sku: z.string() }).refine(async (x) => known(x.sku), { message: 'unknown sku', path: ['sku'] }),
    valibot: v.pipeAsync(
      v.object({ sku: v.string() }),
      v.forwardAsync(
        v.checkAsync(async (x) => known(x.sku), 'unknown sku'),
        ['sku'],
      ),
    ),
  };
  for (const [library, schema] of Object.entries(schemas)) {
    it(`${library}: an async refinement decides`, async () => {
      const registry = createSchemaRegistry([defineEvent({ type: 'ItemReserved', version: 1, schema })]);
      assert.deepEqual(await registry.encode('event', 'ItemReserved', { sku: 'SKU-1' }), {
        data: { sku: 'SKU-1' },
        schemaVersion: 1,
      });
      const error = await validationError(() => registry.encode('event', 'ItemReserved', { sku: 'nope' }));
      assert.deepEqual(error.issues, [{ path: 'data.sku', message: 'unknown sku' }]);
    });
  }
});

describe('decode', () => {
  const OrderPlaced = defineEvent({ type: 'OrderPlaced', version: 3, schema: zodPlaced, upcasters });

  it('does nothing for a current event or a type not defined: the same object comes back', () => {
    const registry = createSchemaRegistry([OrderPlaced]);
    const current = recorded('OrderPlaced', { orderId: 'o', amount: { value: 1, currency: 'EUR' } }, 3);
    assert.equal(registry.decode('event', 'OrderPlaced', 3, current.data), undefined);
    assert.equal(decodeEvent(registry, current), current);
    const other = recorded('Other', {}, 1);
    assert.equal(decodeEvent(registry, other), other);
  });

  it('refuses a version newer than the current one, and one that is no version', () => {
    const registry = createSchemaRegistry([OrderPlaced]);
    assert.throws(
      () => registry.decode('event', 'OrderPlaced', 4, {}),
      (e: SchemaError) => e.code === 'SCHEMA' && e.schemaVersion === 4 && /newer/.test(e.message),
    );
    assert.throws(() => registry.decode('event', 'OrderPlaced', 0, {}), { code: 'SCHEMA' });
  });

  it('names the type, the version and the cause of a failing upcaster, and refuses an async one', () => {
    const broken = defineEvent({
      type: 'Broken',
      version: 3,
      schema: zodPlaced,
      upcasters: {
        1: (d: unknown) => d,
        2: () => {
          throw new TypeError('no total');
        },
      },
    });
    const asyncOne = defineEvent({
      type: 'Later',
      version: 2,
      schema: zodPlaced,
      upcasters: { 1: async (d: unknown) => d },
    });
    const registry = createSchemaRegistry([broken, asyncOne]);
    assert.throws(
      () => registry.decode('event', 'Broken', 1, {}),
      (e: UpcastError) =>
        e.code === 'UPCAST' && e.type === 'Broken' && e.fromVersion === 2 && (e.cause as Error).message === 'no total',
    );
    assert.throws(() => registry.decode('event', 'Later', 1, {}), /must be synchronous/);
  });

  it('validateOnRead checks every event read, current ones included', () => {
    const registry = createSchemaRegistry([OrderPlaced], { validateOnRead: true });
    assert.throws(
      () => decodeEvent(registry, recorded('OrderPlaced', { orderId: 'o' }, 3)),
      (e: ValidationError) => e.issues[0]?.path === 'data.amount',
    );
  });

  it('validateOnRead gives the data as stored: a schema that transforms is not applied again on read', () => {
    const PriceSet = defineEvent({
      type: 'PriceSet',
      version: 1,
      schema: z.object({ cents: z.number().transform((euros) => euros * 100) }),
    });
    const registry = createSchemaRegistry([PriceSet], { validateOnRead: true });
    const stored = registry.encode('event', 'PriceSet', { cents: 5 });
    assert.deepEqual(stored, { data: { cents: 500 }, schemaVersion: 1 });
    assert.deepEqual((decodeEvent(registry, recorded('PriceSet', { cents: 500 }, 1)) as RecordedEvent).data, {
      cents: 500,
    });
    assert.throws(
      () => decodeEvent(registry, recorded('PriceSet', { cents: 'five' }, 1)),
      (e: ValidationError) => e.issues[0]?.path === 'data.cents',
    );
  });

  it('decodes a message by its header: an event relayed by the event types, others by the message types', async () => {
    const ShipOrder = defineMessage({
      type: 'OrderPlaced',
      version: 2,
      schema: z.object({ orderId: z.string(), express: z.boolean() }),
      upcasters: { 1: (d: { orderId: string }) => ({ ...d, express: false }) },
    });
    const registry = createSchemaRegistry([OrderPlaced, ShipOrder]);
    const relayed = messageFromEvent(recorded('OrderPlaced', { orderId: 'o-1', total: 30 }, 1));
    const fromEvent = await decodeMessage(registry, relayed);
    assert.deepEqual(fromEvent.data, { orderId: 'o-1', amount: { value: 30, currency: 'EUR' } });
    assert.equal(fromEvent.headers['factline-schema-version'], '3');
    const { 'factline-stream-id': _, ...headers } = relayed.headers;
    const sent = await decodeMessage(registry, {
      ...relayed,
      data: { orderId: 'o-1' },
      headers: { ...headers, 'factline-schema-version': '1' },
    });
    assert.deepEqual(sent.data, { orderId: 'o-1', express: false });
    assert.equal(sent.headers['factline-schema-version'], '2');
  });

  it("reads a message's schema version header only as digits of a whole number >= 1, naming any other", () => {
    const ShipOrder = defineMessage({
      type: 'ShipOrder',
      version: 2,
      schema: z.object({ orderId: z.string(), express: z.boolean() }),
      upcasters: { 1: (d: { orderId: string }) => ({ ...d, express: false }) },
    });
    const registry = createSchemaRegistry([ShipOrder]);
    const message = (header: string) =>
      createMessage({ type: 'ShipOrder', data: { orderId: 'o' }, headers: { 'factline-schema-version': header } });
    assert.deepEqual((decodeMessage(registry, message('1')) as Message).data, { orderId: 'o', express: false });
    for (const header of [' 1 ', '1.0', '0x1', '1e0', '01', '+1', '', 'abc', '0', '-1', '99999999999999999999']) {
      assert.throws(
        () => decodeMessage(registry, message(header)),
        (e: SchemaError) =>
          e.code === 'SCHEMA' &&
          e.type === 'ShipOrder' &&
          e.retryable === false &&
          e.message.includes(`factline-schema-version header ${JSON.stringify(header)}`),
        JSON.stringify(header),
      );
    }
    // A type the registry does not define is passed as it is: its version is read by nobody.
    const other = createMessage({ type: 'Other', data: {}, headers: { 'factline-schema-version': '01' } });
    assert.equal(decodeMessage(registry, other), other);
  });
});

describe('typed definitions', () => {
  it('infer the event type from the schema', () => {
    const OrderPlaced = defineEvent({ type: 'OrderPlaced', version: 1, schema: zodPlaced });
    const event: EventOfDefinition<typeof OrderPlaced> = {
      type: 'OrderPlaced',
      data: { orderId: 'o', amount: { value: 1, currency: 'EUR' } },
    };
    // @ts-expect-error: the data must match the schema's output
    const wrong: EventOfDefinition<typeof OrderPlaced> = { type: 'OrderPlaced', data: { orderId: 1 } };
    assert.equal(event.data.amount.currency, 'EUR');
    assert.ok(wrong);
  });
});
