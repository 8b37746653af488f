import { toStandardJsonSchema } from '@valibot/to-json-schema';
import * as v from 'valibot';
import { describeRuleCases } from './fixtures/rule-cases.ts';

// valibot 1 has no ~standard.jsonSchema of its own: @valibot/to-json-schema wraps a schema with one.
const std = (schema: v.GenericSchema) => toStandardJsonSchema(schema);
const object = (entries: v.ObjectEntries) => std(v.object(entries));
const line = { sku: v.string(), qty: v.number() };

describeRuleCases('valibot', [
  {
    name: 'a field is removed',
    rule: 'field-removed',
    path: '$.total',
    before: object({ id: v.string(), total: v.number() }),
    breaking: object({ id: v.string() }),
    widening: object({ id: v.string(), total: v.number(), note: v.optional(v.string()) }),
  },
  {
    name: 'a field is renamed',
    rule: 'field-removed',
    path: '$.total',
    before: object({ total: v.number() }),
    breaking: object({ amount: v.number() }),
    widening: object({ total: v.number(), amount: v.optional(v.number()) }),
  },
  {
    name: 'number becomes integer',
    rule: 'type-narrowed',
    path: '$.total',
    before: object({ total: v.number() }),
    breaking: object({ total: v.pipe(v.number(), v.integer()) }),
    widening: object({ total: v.union([v.number(), v.string()]) }),
  },
  {
    name: 'string becomes a picklist',
    rule: 'type-narrowed',
    path: '$.status',
    before: object({ status: v.string() }),
    breaking: object({ status: v.picklist(['open', 'closed']) }),
    widening: object({ status: v.nullable(v.string()) }),
  },
  {
    name: 'a union member is removed',
    rule: 'union-member-removed',
    path: '$.ref',
    before: object({ ref: v.union([v.string(), v.number()]) }),
    breaking: object({ ref: v.string() }),
    widening: object({ ref: v.union([v.string(), v.number(), v.boolean()]) }),
  },
  {
    name: 'a nullable field is no longer nullable',
    rule: 'union-member-removed',
    path: '$.note',
    before: object({ note: v.nullable(v.string()) }),
    breaking: object({ note: v.string() }),
    widening: object({ note: v.nullish(v.string()) }),
  },
  {
    name: 'maxLength is lowered',
    rule: 'bounds-tightened',
    path: '$.id',
    before: object({ id: v.pipe(v.string(), v.maxLength(10)) }),
    breaking: object({ id: v.pipe(v.string(), v.maxLength(5)) }),
    widening: object({ id: v.pipe(v.string(), v.maxLength(20)) }),
  },
  {
    name: 'minLength is raised',
    rule: 'bounds-tightened',
    path: '$.id',
    before: object({ id: v.pipe(v.string(), v.minLength(2)) }),
    breaking: object({ id: v.pipe(v.string(), v.minLength(3)) }),
    widening: object({ id: v.string() }),
  },
  {
    name: 'number bounds are tightened',
    rule: 'bounds-tightened',
    path: '$.qty',
    before: object({ qty: v.pipe(v.number(), v.minValue(0), v.maxValue(100)) }),
    breaking: object({ qty: v.pipe(v.number(), v.minValue(0), v.maxValue(50)) }),
    widening: object({ qty: v.pipe(v.number(), v.minValue(-10)) }),
  },
  {
    name: 'an array gets a maximum size',
    rule: 'bounds-tightened',
    path: '$.tags',
    before: object({ tags: v.array(v.string()) }),
    breaking: object({ tags: v.pipe(v.array(v.string()), v.maxLength(3)) }),
    widening: object({ tags: v.array(v.union([v.string(), v.number()])) }),
  },
  {
    name: 'a picklist value is removed',
    rule: 'enum-value-removed',
    path: '$.status',
    before: object({ status: v.picklist(['open', 'paid', 'closed']) }),
    breaking: object({ status: v.picklist(['open', 'closed']) }),
    widening: object({ status: v.picklist(['open', 'paid', 'closed', 'refunded']) }),
  },
  {
    name: 'a new required field without a default',
    rule: 'required-added',
    path: '$.currency',
    before: object({ total: v.number() }),
    breaking: object({ total: v.number(), currency: v.string() }),
    widening: object({ total: v.number(), currency: v.optional(v.string()) }),
  },
  {
    name: 'an optional field becomes required',
    rule: 'required-added',
    path: '$.note',
    before: object({ note: v.optional(v.string()) }),
    breaking: object({ note: v.string() }),
    widening: object({ note: v.nullish(v.string()) }),
  },
  {
    name: 'a literal changes',
    rule: 'const-changed',
    path: '$.schema',
    before: object({ schema: v.literal('orders/1') }),
    breaking: object({ schema: v.literal('orders/2') }),
    widening: object({ schema: v.picklist(['orders/1', 'orders/2']) }),
  },
  {
    name: 'extra properties are refused (strictObject)',
    rule: 'additional-properties-tightened',
    path: '$',
    before: object({ id: v.string() }),
    breaking: std(v.strictObject({ id: v.string() })),
    widening: std(v.looseObject({ id: v.string() })),
  },
  {
    name: 'extra properties must now match a schema (objectWithRest)',
    rule: 'additional-properties-tightened',
    path: '$',
    before: std(v.looseObject({ id: v.string() })),
    breaking: std(v.objectWithRest({ id: v.string() }, v.number())),
    widening: std(v.looseObject({ id: v.string(), note: v.optional(v.string()) })),
  },
  {
    name: 'a field of a nested object is removed',
    rule: 'field-removed',
    path: '$.customer.address.zip',
    before: object({ customer: v.object({ address: v.object({ zip: v.string(), city: v.string() }) }) }),
    breaking: object({ customer: v.object({ address: v.object({ city: v.string() }) }) }),
    widening: object({
      customer: v.object({ address: v.object({ zip: v.string(), city: v.string(), country: v.optional(v.string()) }) }),
    }),
  },
  {
    name: 'the items of an array narrow',
    rule: 'type-narrowed',
    path: '$.lines[].qty',
    before: object({ lines: v.array(v.object(line)) }),
    breaking: object({ lines: v.array(v.object({ sku: v.string(), qty: v.pipe(v.number(), v.integer()) })) }),
    widening: object({ lines: v.array(v.object({ ...line, price: v.optional(v.number()) })) }),
  },
  {
    name: 'a lazy (recursive) schema written under $defs changes',
    rule: 'field-removed',
    path: '$.children[].name',
    before: std(tree({ name: v.string(), rank: v.number() })),
    breaking: std(tree({ rank: v.number() })),
    widening: std(tree({ name: v.string(), rank: v.nullable(v.number()) })),
  },
  {
    name: 'a variant member is removed',
    rule: 'union-member-removed',
    path: '$.payment',
    before: object({
      payment: v.variant('method', [
        v.object({ method: v.literal('card'), last4: v.string() }),
        v.object({ method: v.literal('cash') }),
      ]),
    }),
    breaking: object({ payment: v.variant('method', [v.object({ method: v.literal('card'), last4: v.string() })]) }),
    widening: object({
      payment: v.variant('method', [
        v.object({ method: v.literal('card'), last4: v.string() }),
        v.object({ method: v.literal('cash') }),
        v.object({ method: v.literal('voucher') }),
      ]),
    }),
  },
]);

/** A node whose children are nodes (valibot writes the lazy part under $defs and refers to it). */
function tree(entries: v.ObjectEntries): v.GenericSchema {
  const node: v.GenericSchema = v.object({ ...entries, children: v.lazy(() => v.array(node)) });
  return node;
}
