import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isValidationError } from '@factline/core';
import { toStandardJsonSchema } from '@valibot/to-json-schema';
import * as v from 'valibot';
import { z } from 'zod';
import type { SchemaDefinitionLike } from './definitions.ts';
import { isBreakingSchemaChangeError, schemaSnapshot, writeSchemaSnapshot } from './snapshot.ts';

const root = mkdtempSync(join(tmpdir(), 'factline-schema-snapshot-'));
after(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const freshDir = () => join(root, String(count++));

const placed = (version: number, schema: z.ZodType = z.object({ orderId: z.string(), total: z.number() })) =>
  ({ kind: 'event', type: 'OrderPlaced', version, schema }) as const;
const ship = { kind: 'message', type: 'ShipOrder', version: 1, schema: z.object({ orderId: z.string() }) } as const;

describe('schemaSnapshot', () => {
  it('gives each type its current version and JSON Schema, by kind, keys sorted', () => {
    const snapshot = schemaSnapshot([ship, placed(1), placed(2, z.object({ orderId: z.string() }))]);
    assert.deepEqual(Object.keys(snapshot.events), ['OrderPlaced']);
    assert.equal(snapshot.events.OrderPlaced?.version, 2);
    assert.deepEqual(snapshot.events.OrderPlaced?.schema, {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      properties: { orderId: { type: 'string' } },
      required: ['orderId'],
      type: 'object',
    });
    assert.deepEqual(Object.keys(snapshot.messages), ['ShipOrder']);
    assert.deepEqual(JSON.parse(JSON.stringify(snapshot)), snapshot, 'JSON-serialisable');
  });

  it('takes a registry (anything with definitions()) as well as an array', () => {
    const registry = { definitions: () => [placed(1)] };
    assert.deepEqual(schemaSnapshot(registry), schemaSnapshot([placed(1)]));
  });

  it('uses jsonSchema given on a definition when its validator has no Standard JSON Schema', () => {
    const jsonSchema = { type: 'object', properties: { id: { type: 'string' } } };
    const snapshot = schemaSnapshot([{ ...ship, schema: v.object({ id: v.string() }), jsonSchema }]);
    assert.deepEqual(snapshot.messages.ShipOrder?.schema, jsonSchema);
  });

  it('refuses, naming each, definitions without a JSON Schema, malformed or defined twice', () => {
    const definitions = [
      { kind: 'event', type: 'Bare', version: 1, schema: v.object({ id: v.string() }) },
      { kind: 'event', type: 'Dated', version: 1, schema: z.object({ at: z.date() }) },
      { kind: 'command', type: '', version: 0, schema: z.string() },
      placed(1),
      placed(1),
    ] as unknown as SchemaDefinitionLike[];
    assert.throws(
      () => schemaSnapshot(definitions),
      (error: unknown) => {
        assert.ok(isValidationError(error));
        const text = error.issues.map((i) => `${i.path}: ${i.message}`);
        assert.match(
          text[0] ?? '',
          /^event 'Bare' v1: its valibot schema does not implement .*@valibot\/to-json-schema/,
        );
        assert.match(text[1] ?? '', /^event 'Dated' v1: its schema cannot be written as JSON Schema: Date/);
        assert.ok(text.includes("command '' v0.kind: must be 'event' or 'message', got 'command'"), text.join('\n'));
        assert.ok(text.some((t) => t.startsWith("command '' v0.version: must be an integer >= 1")));
        assert.ok(text.includes("event 'OrderPlaced' v1: is defined twice"));
        return true;
      },
    );
    assert.throws(() => schemaSnapshot(42 as never), /must be a schema registry/);
  });
});

describe('writeSchemaSnapshot', () => {
  it('writes one file per type and version, sorted keys and a trailing newline', () => {
    const dir = freshDir();
    const result = writeSchemaSnapshot(dir, [placed(1), ship]);
    assert.deepEqual(result, { written: ['events/OrderPlaced.v1.json', 'messages/ShipOrder.v1.json'], unchanged: [] });
    const text = readFileSync(join(dir, 'events/OrderPlaced.v1.json'), 'utf8');
    assert.equal(
      text,
      `${JSON.stringify(
        {
          kind: 'event',
          schema: {
            $schema: 'https://json-schema.org/draft/2020-12/schema',
            properties: { orderId: { type: 'string' }, total: { type: 'number' } },
            required: ['orderId', 'total'],
            type: 'object',
          },
          type: 'OrderPlaced',
          version: 1,
        },
        null,
        2,
      )}\n`,
    );
  });

  it('leaves a file that holds the same schema, and keeps old versions when a version is bumped', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1)]);
    assert.deepEqual(writeSchemaSnapshot(dir, [placed(1)]), { written: [], unchanged: ['events/OrderPlaced.v1.json'] });
    const v2 = placed(2, z.object({ orderId: z.string() }));
    assert.deepEqual(writeSchemaSnapshot(dir, [v2]).written, ['events/OrderPlaced.v2.json']);
    assert.deepEqual(readdirSync(join(dir, 'events')).sort(), ['OrderPlaced.v1.json', 'OrderPlaced.v2.json']);
  });

  it('escapes a type name that is not a plain file name', () => {
    const dir = freshDir();
    const result = writeSchemaSnapshot(dir, [{ ...ship, type: 'shipping/Ship Order' }]);
    assert.deepEqual(result.written, ['messages/shipping%2FShip%20Order.v1.json']);
  });

  it('refuses to record a breaking change over an existing version, unless forced', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1)]);
    const before = readFileSync(join(dir, 'events/OrderPlaced.v1.json'), 'utf8');
    const broken = placed(1, z.object({ orderId: z.string() }));
    assert.throws(
      () => writeSchemaSnapshot(dir, [broken, ship]),
      (error: unknown) => {
        assert.ok(isBreakingSchemaChangeError(error));
        assert.deepEqual(
          error.report.problems.map((p) => `${p.rule} ${p.path}`),
          ['field-removed $.total'],
        );
        return true;
      },
    );
    assert.equal(readFileSync(join(dir, 'events/OrderPlaced.v1.json'), 'utf8'), before, 'nothing written');
    assert.deepEqual(readdirSync(dir), ['events'], 'not even the other types');
    assert.deepEqual(writeSchemaSnapshot(dir, [broken], { force: true }).written, ['events/OrderPlaced.v1.json']);
    assert.throws(() => writeSchemaSnapshot(dir, [broken], { forse: true } as never), /forse: is not an option/);
  });

  it('records a valibot schema wrapped for Standard JSON Schema', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [{ ...ship, schema: toStandardJsonSchema(v.object({ orderId: v.string() })) }]);
    const file = JSON.parse(readFileSync(join(dir, 'messages/ShipOrder.v1.json'), 'utf8'));
    assert.deepEqual(file.schema.properties, { orderId: { type: 'string' } });
  });

  it('refuses a snapshot folder holding a malformed file', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1)]);
    writeFileSync(join(dir, 'events/OrderPlaced.v2.json'), '{ "kind": "event" ');
    writeFileSync(join(dir, 'events/notes.txt'), 'hello');
    assert.throws(
      () => writeSchemaSnapshot(dir, [placed(2)]),
      (error: unknown) => {
        assert.ok(isValidationError(error));
        assert.deepEqual(
          error.issues.map((i) => i.path),
          ['events/OrderPlaced.v2.json', 'events/notes.txt'],
        );
        return true;
      },
    );
  });
});
