import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareSchemas } from './compare-schemas.ts';

const found = (before: unknown, after: unknown) => compareSchemas(before, after).map((c) => `${c.rule} ${c.path}`);
const object = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  type: 'object',
  properties,
  required: Object.keys(properties),
  ...extra,
});

describe('compareSchemas reads the ways validators write the same thing', () => {
  it('takes a type list, anyOf and oneOf of types, and OpenAPI nullable as the same union', () => {
    const forms = [
      { type: ['string', 'null'] },
      { anyOf: [{ type: 'string' }, { type: 'null' }] },
      { oneOf: [{ type: 'null' }, { type: 'string' }] },
      { type: 'string', nullable: true },
    ];
    for (const a of forms) for (const b of forms) assert.deepEqual(found(a, b), [], `${JSON.stringify([a, b])}`);
    for (const a of forms) assert.deepEqual(found(a, { type: 'string' }), ['union-member-removed $']);
  });

  it('takes const and a one-value enum, with or without type, as the same value', () => {
    const forms = [{ const: 'x' }, { type: 'string', const: 'x' }, { enum: ['x'] }, { type: 'string', enum: ['x'] }];
    for (const a of forms) for (const b of forms) assert.deepEqual(found(a, b), []);
    assert.deepEqual(found({ enum: ['x', 1] }, { enum: ['x'] }), ['enum-value-removed $']);
    assert.deepEqual(found({ const: 3 }, { type: 'integer', const: 3 }), []);
  });

  it('follows $ref into $defs and definitions, and compares shapes whatever the names', () => {
    const before = { $defs: { A: object({ id: { type: 'string' } }) }, ...object({ a: { $ref: '#/$defs/A' } }) };
    const renamed = {
      definitions: { B: object({ id: { type: 'string' } }) },
      ...object({ a: { $ref: '#/definitions/B' } }),
    };
    assert.deepEqual(found(before, renamed), []);
    const inline = object({ a: object({}) });
    assert.deepEqual(found(before, inline), ['field-removed $.a.id']);
  });

  it('ends on a cycle and still finds a change inside it', () => {
    const node = (value: unknown) => ({
      $ref: '#/$defs/N',
      $defs: { N: object({ value, next: { anyOf: [{ $ref: '#/$defs/N' }, { type: 'null' }] } }) },
    });
    assert.deepEqual(found(node({ type: 'number' }), node({ type: 'number' })), []);
    assert.deepEqual(found(node({ type: 'number' }), node({ type: 'integer' })), ['type-narrowed $.value']);
  });

  it('ends on a cycle through a merged allOf and still finds a change inside it', () => {
    const node = (value: unknown) => ({
      $ref: '#/$defs/N',
      $defs: {
        N: { allOf: [object({ value }), object({ next: { anyOf: [{ $ref: '#/$defs/N' }, { type: 'null' }] } })] },
      },
    });
    assert.deepEqual(found(node({ type: 'number' }), node({ type: 'number' })), []);
    assert.deepEqual(found(node({ type: 'number' }), node({ type: 'integer' })), ['type-narrowed $.value']);
  });

  it('compares what it cannot take apart by its text', () => {
    const outside = { $ref: 'https://example.com/money.json' };
    assert.deepEqual(found(outside, { ...outside }), []);
    assert.deepEqual(found(outside, { $ref: 'https://example.com/money-v2.json' }), ['type-narrowed $']);
    assert.deepEqual(found({ not: { type: 'null' } }, { not: { type: 'null' } }), []);
  });

  it('compares not, if/then/else and contains beside a type by their text: added, removed or changed', () => {
    assert.deepEqual(compareSchemas({ type: 'string' }, { type: 'string', not: { const: 'x' } }), [
      {
        rule: 'type-narrowed',
        path: '$',
        message: 'not changed, which the check compares by its text only',
        before: {},
        after: { not: { const: 'x' } },
      },
    ]);
    const notX = { type: 'string', not: { const: 'x' } };
    assert.deepEqual(found(notX, { type: 'string', not: { const: 'y' } }), ['type-narrowed $']);
    assert.deepEqual(found(notX, { type: 'string' }), ['type-narrowed $']);
    assert.deepEqual(found(notX, structuredClone(notX)), []);
    const strings = { type: 'array', items: { type: 'string' } };
    assert.deepEqual(found(strings, { ...strings, contains: { const: 'x' } }), ['type-narrowed $']);
    const containsX = { ...strings, contains: { const: 'x' } };
    assert.deepEqual(found(containsX, { ...containsX, minContains: 2 }), ['type-narrowed $']);
    // biome-ignore lint/suspicious/noThenProperty: a JSON Schema keyword, never awaited
    const card = { if: { properties: { kind: { const: 'card' } } }, then: { required: ['last4'] } };
    const payment = object({ kind: { type: 'string' }, last4: { type: 'string' } }, { required: ['kind'] });
    assert.deepEqual(found(payment, { ...payment, ...card }), ['type-narrowed $']);
    assert.deepEqual(found({ ...payment, ...card }, { ...payment, ...card, else: false }), ['type-narrowed $']);
    // Told once for a type list, at the field; the other keywords are still compared one by one.
    const note = (schema: object) => object({ note: { type: ['string', 'null'], ...schema } });
    assert.deepEqual(found(note({}), note({ not: { const: '' } })), ['type-narrowed $.note']);
    assert.deepEqual(found({ type: 'string', maxLength: 5 }, { type: 'string', maxLength: 3, not: { const: 'x' } }), [
      'type-narrowed $',
      'bounds-tightened $',
    ]);
    assert.deepEqual(found({ enum: ['a', 'b'] }, { enum: ['a', 'b'], not: { const: 'a' } }), ['type-narrowed $']);
  });

  it('reads draft-07 tuples (items array, additionalItems) like prefixItems', () => {
    const draft07 = { type: 'array', items: [{ type: 'number' }, { type: 'number' }], additionalItems: false };
    const draft2020 = { type: 'array', prefixItems: [{ type: 'number' }, { type: 'number' }], items: false };
    assert.deepEqual(found(draft07, draft2020), []);
    const narrower = { type: 'array', prefixItems: [{ type: 'number' }, { type: 'integer' }], items: false };
    assert.deepEqual(found(draft07, narrower), ['type-narrowed $[1]']);
  });

  it('merges allOf of objects, and treats true, {} and a missing schema as anything', () => {
    const merged = { allOf: [object({ a: { type: 'string' } }), object({ b: { type: 'number' } })] };
    assert.deepEqual(found(object({ a: { type: 'string' }, b: { type: 'number' } }), merged), []);
    assert.deepEqual(found(merged, object({ a: { type: 'string' } })), ['field-removed $.b']);
    assert.deepEqual(found(object({ a: {} }), object({ a: true })), []);
    assert.deepEqual(found(object({ a: { description: 'anything' } }), object({ a: { type: 'string' } })), [
      'type-narrowed $.a',
    ]);
    assert.deepEqual(found(object({ a: { type: 'string' } }), object({ a: false })), ['type-narrowed $.a']);
  });

  it('merges what allOf members say of extra fields, their keys and their count; takes other keywords as opaque', () => {
    const record = (values: unknown, extra: Record<string, unknown> = {}) => ({
      allOf: [object({ id: { type: 'string' } }), { type: 'object', additionalProperties: values, ...extra }],
    });
    const text = { type: 'string' };
    const textOrNumber = { type: ['string', 'number'] };
    // The record's values apply to `id` too: string and (string or number) is string.
    assert.deepEqual(found(record(textOrNumber), object({ id: text }, { additionalProperties: textOrNumber })), []);
    assert.deepEqual(found(record(textOrNumber), record(text)), ['union-member-removed $.*']);
    assert.deepEqual(found(record(text), record(textOrNumber)), []);
    // A member refusing extra fields refuses the fields only the other declares: `id` too.
    assert.deepEqual(found(record(text), record(false)), ['type-narrowed $.id', 'additional-properties-tightened $']);
    const keyed = record(text, { propertyNames: { pattern: '^x' } });
    assert.deepEqual(found(object({ m: record(text) }), object({ m: keyed })), ['type-narrowed $.m{key}']);
    assert.deepEqual(found(record(text, { maxProperties: 9 }), record(text, { maxProperties: 5 })), [
      'bounds-tightened $',
    ]);
    assert.deepEqual(found(record(text, { minProperties: 2 }), record(text, { minProperties: 1 })), []);
    // A field both members declare must pass both.
    const shared = (a: unknown, b: unknown) => ({ allOf: [object({ code: a }), object({ code: b })] });
    assert.deepEqual(found(shared(text, text), shared({ type: 'string', maxLength: 3 }, text)), [
      'bounds-tightened $.code',
    ]);
    // patternProperties does not merge: the allOf is compared by its text, never passed unseen.
    const opaque = record(text, { patternProperties: { '^n': { type: 'number' } } });
    assert.deepEqual(found(opaque, structuredClone(opaque)), []);
    assert.deepEqual(found(record(text), opaque), ['type-narrowed $']);
    assert.deepEqual(found(opaque, record(text, { patternProperties: { '^n': { type: 'integer' } } })), [
      'type-narrowed $',
    ]);
  });

  it('checks each value an enum or const listed against the bounds, pattern and format that replace it', () => {
    assert.deepEqual(compareSchemas({ type: 'string', enum: ['small', 'medium'] }, { type: 'string', maxLength: 5 }), [
      {
        rule: 'bounds-tightened',
        path: '$',
        message: 'no longer accepts "medium" (maxLength lowered to 5 characters)',
        before: ['medium'],
        after: 5,
      },
    ]);
    assert.deepEqual(found({ enum: [1, 2.5] }, { type: 'integer' }), ['type-narrowed $']);
    assert.deepEqual(found({ enum: [1, 2] }, { type: 'integer' }), []);
    assert.deepEqual(found({ const: 5 }, { type: 'number', exclusiveMaximum: 5 }), ['bounds-tightened $']);
    assert.deepEqual(found({ const: 5 }, { type: 'number', minimum: 5, maximum: 5 }), []);
    assert.deepEqual(found({ enum: [0.3, 0.6] }, { type: 'number', multipleOf: 0.1 }), []);
    assert.deepEqual(found({ enum: [0.3, 0.5] }, { type: 'number', multipleOf: 0.2 }), ['bounds-tightened $']);
    // Length in code points (JSON Schema) for a minimum, UTF-16 units (JavaScript) for a maximum: the stricter.
    assert.deepEqual(found({ const: '😀😀' }, { type: 'string', minLength: 3 }), ['bounds-tightened $']);
    assert.deepEqual(found({ const: '😀😀' }, { type: 'string', maxLength: 3 }), ['bounds-tightened $']);
    assert.deepEqual(found({ enum: ['a@b.co'] }, { type: 'string', format: 'email' }), ['type-narrowed $']);
    assert.deepEqual(found({ enum: ['a@b.co'], format: 'email' }, { type: 'string', format: 'email' }), []);
    assert.deepEqual(found({ enum: ['EUR', 'USD'] }, { type: 'string', pattern: '^[A-Z]{3}$' }), []);
  });

  it('checks each object or array an enum or const listed against the schema that replaces it, part by part', () => {
    const line = object({ a: { type: 'number' }, b: { type: 'number' } });
    assert.deepEqual(compareSchemas({ enum: [{ a: 1 }] }, line), [
      {
        rule: 'required-added',
        path: '$.b',
        message: `field 'b' is required now, and the listed value {"a":1} lacks it`,
        before: { a: 1 },
        after: null,
      },
    ]);
    assert.deepEqual(found({ enum: [{ a: 1, b: 2 }] }, line), []);
    assert.deepEqual(found({ const: { a: 1.5, b: 2 } }, object({ a: { type: 'integer' }, b: {} })), [
      'type-narrowed $.a',
    ]);
    assert.deepEqual(found({ const: { a: 1, b: 2, c: 3 } }, { ...line, additionalProperties: false }), [
      'additional-properties-tightened $',
    ]);
    assert.deepEqual(
      found({ const: { a: 1, b: 2, c: 'x' } }, { ...line, additionalProperties: { type: 'string' } }),
      [],
    );
    const tagged = { ...line, patternProperties: { '^tag_': { type: 'number' } }, additionalProperties: false };
    assert.deepEqual(found({ const: { a: 1, b: 2, tag_x: 'red' } }, tagged), ['enum-value-removed $[/^tag_/]']);
    assert.deepEqual(found({ const: { a: 1, b: 2, tag_x: 3 } }, tagged), []);
    assert.deepEqual(found({ const: { a: 1, b: 2 } }, { ...line, maxProperties: 1 }), ['bounds-tightened $']);
    assert.deepEqual(found({ const: { a: 1 } }, { type: 'object', dependentRequired: { a: ['b'] } }), [
      'required-added $.b',
    ]);
    const keyed = { type: 'object', propertyNames: { pattern: '^b' } };
    assert.deepEqual(found({ const: { m: { a: 1 } } }, object({ m: keyed })), ['type-narrowed $.m{key}']);
    const numbers = { type: 'array', items: { type: 'number' } };
    assert.deepEqual(found({ enum: [[1, 2], [3]] }, numbers), []);
    assert.deepEqual(found({ enum: [[1, 2], [3]] }, { ...numbers, minItems: 2 }), ['bounds-tightened $']);
    assert.deepEqual(found({ const: [1, 1] }, { ...numbers, uniqueItems: true }), ['bounds-tightened $']);
    assert.deepEqual(found({ const: [1, 2.5] }, { type: 'array', items: { type: 'integer' } }), ['type-narrowed $[]']);
    const pair = { type: 'array', prefixItems: [{ type: 'number' }, { type: 'string' }], items: false };
    assert.deepEqual(found({ const: [1, 2, 3] }, pair), ['enum-value-removed $[1]', 'bounds-tightened $[]']);
    // Values inside values, and listed values kept whatever the order of their keys.
    const nested = object({ m: object({ n: { type: 'string', maxLength: 1 } }) });
    assert.deepEqual(found({ const: { m: { n: 'xy' } } }, nested), ['bounds-tightened $.m.n']);
    assert.deepEqual(found({ enum: [{ a: 1, b: 2 }] }, { enum: [{ b: 2, a: 1 }] }), []);
  });

  it('ignores the safe-integer range zod writes on every integer, not a real bound', () => {
    const zodInt = { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 };
    assert.deepEqual(found({ type: 'integer' }, zodInt), []);
    assert.deepEqual(found({ type: 'integer', minimum: 0 }, { ...zodInt, minimum: 1 }), ['bounds-tightened $']);
  });

  it('flags patterns, formats, multipleOf and uniqueItems added; passes them removed', () => {
    assert.deepEqual(found({ type: 'string' }, { type: 'string', pattern: '^A' }), ['type-narrowed $']);
    assert.deepEqual(found({ type: 'string', format: 'email' }, { type: 'string' }), []);
    assert.deepEqual(found({ type: 'number', multipleOf: 2 }, { type: 'number', multipleOf: 4 }), [
      'bounds-tightened $',
    ]);
    assert.deepEqual(found({ type: 'number', multipleOf: 4 }, { type: 'number', multipleOf: 2 }), []);
    assert.deepEqual(found({ type: 'array' }, { type: 'array', uniqueItems: true }), ['bounds-tightened $']);
  });

  it('compares decimal steps (multipleOf) without floating-point remainders', () => {
    const step = (multipleOf: number) => ({ type: 'number', multipleOf });
    assert.deepEqual(found(step(0.3), step(0.1)), []);
    assert.deepEqual(found(step(0.7), step(0.01)), []);
    assert.deepEqual(found(step(0.1), step(0.3)), ['bounds-tightened $']);
    assert.deepEqual(found(step(0.25), step(0.1)), ['bounds-tightened $']);
  });

  it('flags an optional field made required or given a default: stored events may lack it, reads apply no defaults', () => {
    const before = object({ a: { type: 'string' } }, { required: [] });
    assert.deepEqual(found(before, object({ a: { type: 'string', default: 'x' } })), ['required-added $.a']);
    assert.deepEqual(found(before, object({ a: { type: 'string', default: 'x' } }, { required: [] })), [
      'required-added $.a',
    ]);
    assert.deepEqual(found(before, object({ a: { type: 'string' } })), ['required-added $.a']);
    assert.deepEqual(found(before, object({ a: { type: 'string' } }, { required: [] })), []);
    // Required before: every stored event has it, a default changes nothing for them.
    assert.deepEqual(found(object({ a: { type: 'string' } }), object({ a: { type: 'string', default: 'x' } })), []);
  });

  it('flags a name made required that no properties entry declares (a hand-written jsonSchema)', () => {
    const before = object({ a: { type: 'string' } });
    assert.deepEqual(compareSchemas(before, { ...before, required: ['a', 'b'] }), [
      {
        rule: 'required-added',
        path: '$.b',
        message: "field 'b' became required (no properties entry declares it)",
        before: null,
        after: null,
      },
    ]);
    assert.deepEqual(found({ ...before, required: ['a', 'b'] }, { ...before, required: ['b', 'a'] }), []);
    assert.deepEqual(found({ ...before, required: ['a', 'b'] }, before), []);
    assert.deepEqual(found({ type: 'object' }, { type: 'object', required: ['first name'] }), [
      'required-added $["first name"]',
    ]);
  });

  it('flags a name a present field now requires (dependentRequired, dependencies); compares dependentSchemas by its text', () => {
    const card = object({ kind: { type: 'string' }, last4: { type: 'string' } }, { required: [] });
    assert.deepEqual(compareSchemas(card, { ...card, dependentRequired: { kind: ['last4'] } }), [
      {
        rule: 'required-added',
        path: '$.last4',
        message: "field 'last4' became required when 'kind' is present",
        before: null,
        after: ['last4'],
      },
    ]);
    assert.deepEqual(found(card, { ...card, dependencies: { kind: ['last4'] } }), ['required-added $.last4']);
    // Required already, or by the same field already (draft-07 or 2020-12), or no longer: compatible.
    const required = { ...card, required: ['last4'] };
    assert.deepEqual(found(required, { ...required, dependentRequired: { kind: ['last4'] } }), []);
    assert.deepEqual(
      found({ ...card, dependencies: { kind: ['last4'] } }, { ...card, dependentRequired: { kind: ['last4'] } }),
      [],
    );
    assert.deepEqual(found({ ...card, dependentRequired: { kind: ['last4'] } }, card), []);
    const last4 = { kind: { required: ['last4'] } };
    assert.deepEqual(found(card, { ...card, dependentSchemas: last4 }), ['type-narrowed $']);
    assert.deepEqual(found(card, { ...card, dependencies: last4 }), ['type-narrowed $']);
    assert.deepEqual(
      found({ ...card, dependentSchemas: last4 }, { ...card, dependencies: structuredClone(last4) }),
      [],
    );
    assert.deepEqual(found({ ...card, dependentSchemas: last4 }, { ...card, dependentSchemas: { kind: false } }), [
      'type-narrowed $',
    ]);
  });

  it("flags a record's keys narrowed (an enum value gone, a pattern added), not widened", () => {
    const record = (propertyNames?: object) => ({
      type: 'object',
      properties: {
        m: { type: 'object', ...(propertyNames ? { propertyNames } : {}), additionalProperties: { type: 'number' } },
      },
      required: ['m'],
    });
    const ab = { type: 'string', enum: ['a', 'b'] };
    assert.deepEqual(found(record(ab), record({ type: 'string', enum: ['a'] })), ['enum-value-removed $.m{key}']);
    assert.deepEqual(found(record({ type: 'string' }), record({ type: 'string', pattern: '^x' })), [
      'type-narrowed $.m{key}',
    ]);
    assert.deepEqual(found(record(), record(ab)), ['type-narrowed $.m{key}']);
    assert.deepEqual(found(record({ type: 'string', enum: ['a'] }), record(ab)), []);
    assert.deepEqual(found(record(ab), record()), []);
  });

  it('compares the extra fields a key pattern (patternProperties) takes, added, kept or removed', () => {
    const tagged = (patterns: Record<string, unknown>, extra?: unknown) =>
      object(
        { id: { type: 'string' } },
        { patternProperties: patterns, ...(extra === undefined ? {} : { additionalProperties: extra }) },
      );
    const number = { type: 'number' };
    const integer = { type: 'integer' };
    // A pattern added: extra fields that matched it were taken by the extra-field schema before.
    assert.deepEqual(found(object({ id: { type: 'string' } }), tagged({ '^tag_': number })), [
      'additional-properties-tightened $',
    ]);
    assert.deepEqual(found(object({ id: { type: 'string' } }), tagged({ '^tag_': {} })), []);
    assert.deepEqual(found(tagged({}, number), tagged({ '^tag_': integer }, number)), ['type-narrowed $[/^tag_/]']);
    assert.deepEqual(found(tagged({}, integer), tagged({ '^tag_': number }, integer)), []);
    assert.deepEqual(found(tagged({}, false), tagged({ '^tag_': integer }, false)), []);
    // A pattern kept: its schema compared.
    assert.deepEqual(found(tagged({ '^tag_': number }), tagged({ '^tag_': integer })), ['type-narrowed $[/^tag_/]']);
    assert.deepEqual(found(tagged({ '^tag_': integer }), tagged({ '^tag_': number })), []);
    // A pattern removed: its fields go to the extra-field schema.
    assert.deepEqual(found(tagged({ '^tag_': number }, false), tagged({}, false)), [
      'additional-properties-tightened $',
    ]);
    assert.deepEqual(found(tagged({ '^tag_': number }, false), tagged({}, integer)), ['type-narrowed $[/^tag_/]']);
    assert.deepEqual(found(tagged({ '^tag_': number }, false), tagged({})), []);
    assert.deepEqual(found(tagged({ '^tag_': number }, false), tagged({ '^tag': number }, false)), []);
    // A new pattern that may match a key an old one took must accept its values; one that cannot (another literal start) need not.
    assert.deepEqual(found(tagged({ '^tag': number }, false), tagged({ '^tag': number, '^tag_x': integer }, false)), [
      'type-narrowed $[/^tag_x/]',
    ]);
    assert.deepEqual(
      found(tagged({ '^tag_': number }, false), tagged({ '^tag_': number, '^meta_': integer }, false)),
      [],
    );
    // A declared field a new pattern matches must pass it too.
    assert.deepEqual(found(tagged({}, false), tagged({ '^i': { type: 'string', maxLength: 3 } }, false)), [
      'bounds-tightened $.id',
    ]);
  });

  it('quotes a field name that is not an identifier in the path', () => {
    assert.deepEqual(found(object({ 'first name': { type: 'string' } }), object({})), [
      'field-removed $["first name"]',
    ]);
  });
});
