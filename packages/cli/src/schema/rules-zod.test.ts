import { z } from 'zod';
import { describeRuleCases } from './fixtures/rule-cases.ts';

const line = z.object({ sku: z.string(), qty: z.number() });
// One instance used twice: zod writes it once under $defs and points both fields at it.
const addressBefore = z.object({ street: z.string(), city: z.string() }).meta({ id: 'AddressBefore' });
const addressBreaking = z.object({ street: z.string() }).meta({ id: 'AddressBreaking' });
const addressWidening = z
  .object({ street: z.string(), city: z.string(), zip: z.string().optional() })
  .meta({ id: 'AddressWidening' });

describeRuleCases('zod', [
  {
    name: 'a field is removed',
    rule: 'field-removed',
    path: '$.total',
    before: z.object({ id: z.string(), total: z.number() }),
    breaking: z.object({ id: z.string() }),
    widening: z.object({ id: z.string(), total: z.number(), note: z.string().optional() }),
  },
  {
    name: 'a field is renamed',
    rule: 'field-removed',
    path: '$.total',
    before: z.object({ total: z.number() }),
    breaking: z.object({ amount: z.number() }),
    widening: z.object({ total: z.number(), amount: z.number().optional() }),
  },
  {
    name: 'number becomes integer',
    rule: 'type-narrowed',
    path: '$.total',
    before: z.object({ total: z.number() }),
    breaking: z.object({ total: z.number().int() }),
    widening: z.object({ total: z.union([z.number(), z.string()]) }),
  },
  {
    name: 'string becomes an enum',
    rule: 'type-narrowed',
    path: '$.status',
    before: z.object({ status: z.string() }),
    breaking: z.object({ status: z.enum(['open', 'closed']) }),
    widening: z.object({ status: z.string().nullable() }),
  },
  {
    name: 'a union member is removed',
    rule: 'union-member-removed',
    path: '$.ref',
    before: z.object({ ref: z.union([z.string(), z.number()]) }),
    breaking: z.object({ ref: z.string() }),
    widening: z.object({ ref: z.union([z.string(), z.number(), z.boolean()]) }),
  },
  {
    name: 'a nullable field is no longer nullable',
    rule: 'union-member-removed',
    path: '$.note',
    before: z.object({ note: z.string().nullable() }),
    breaking: z.object({ note: z.string() }),
    widening: z.object({ note: z.string().nullable().optional() }),
  },
  {
    name: 'maxLength is lowered',
    rule: 'bounds-tightened',
    path: '$.id',
    before: z.object({ id: z.string().max(10) }),
    breaking: z.object({ id: z.string().max(5) }),
    widening: z.object({ id: z.string().max(20) }),
  },
  {
    name: 'minLength is raised',
    rule: 'bounds-tightened',
    path: '$.id',
    before: z.object({ id: z.string().min(2) }),
    breaking: z.object({ id: z.string().min(3) }),
    widening: z.object({ id: z.string().min(1) }),
  },
  {
    name: 'number bounds are tightened',
    rule: 'bounds-tightened',
    path: '$.qty',
    before: z.object({ qty: z.number().min(0).max(100) }),
    breaking: z.object({ qty: z.number().gt(0).max(100) }),
    widening: z.object({ qty: z.number().min(-1).max(1000) }),
  },
  {
    name: 'an array gets a maximum size',
    rule: 'bounds-tightened',
    path: '$.tags',
    before: z.object({ tags: z.array(z.string()) }),
    breaking: z.object({ tags: z.array(z.string()).max(3) }),
    widening: z.object({ tags: z.array(z.union([z.string(), z.number()])) }),
  },
  {
    name: 'an enum becomes a string one of its values is too long for',
    rule: 'bounds-tightened',
    path: '$.size',
    before: z.object({ size: z.enum(['small', 'medium', 'large']) }),
    breaking: z.object({ size: z.string().max(5) }),
    widening: z.object({ size: z.string().max(6) }),
  },
  {
    name: 'an enum becomes a string its values are too short for',
    rule: 'bounds-tightened',
    path: '$.currency',
    before: z.object({ currency: z.enum(['EUR', 'USD']) }),
    breaking: z.object({ currency: z.string().min(4) }),
    widening: z.object({ currency: z.string().regex(/^[A-Z]{3}$/) }),
  },
  {
    name: 'an enum becomes a string whose pattern one of its values fails',
    rule: 'type-narrowed',
    path: '$.currency',
    before: z.object({ currency: z.enum(['EUR', 'usd']) }),
    breaking: z.object({ currency: z.string().regex(/^[A-Z]{3}$/) }),
    widening: z.object({ currency: z.string().regex(/^[A-Za-z]{3}$/) }),
  },
  {
    name: 'a literal becomes a number bounded below it',
    rule: 'bounds-tightened',
    path: '$.qty',
    before: z.object({ qty: z.literal(10) }),
    breaking: z.object({ qty: z.number().max(5) }),
    widening: z.object({ qty: z.number().max(10) }),
  },
  {
    // zod writes an intersection as allOf: the record's value schema applies to `id` too.
    name: 'an intersection with a record narrows the record values',
    rule: 'union-member-removed',
    path: '$.*',
    before: z.object({ id: z.string() }).and(z.record(z.string(), z.union([z.string(), z.number()]))),
    breaking: z.object({ id: z.string() }).and(z.record(z.string(), z.string())),
    widening: z.object({ id: z.string() }).and(z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]))),
  },
  {
    name: 'an enum value is removed',
    rule: 'enum-value-removed',
    path: '$.status',
    before: z.object({ status: z.enum(['open', 'paid', 'closed']) }),
    breaking: z.object({ status: z.enum(['open', 'closed']) }),
    widening: z.object({ status: z.enum(['open', 'paid', 'closed', 'refunded']) }),
  },
  {
    name: 'a new required field without a default',
    rule: 'required-added',
    path: '$.currency',
    before: z.object({ total: z.number() }),
    breaking: z.object({ total: z.number(), currency: z.string() }),
    widening: z.object({ total: z.number(), currency: z.string().optional() }),
  },
  {
    // Stored events read back without it: reads apply no defaults.
    name: 'a new field with a default',
    rule: 'required-added',
    path: '$.currency',
    before: z.object({ total: z.number() }),
    breaking: z.object({ total: z.number(), currency: z.string().default('EUR') }),
    widening: z.object({ total: z.number(), currency: z.string().optional() }),
  },
  {
    name: 'an optional field becomes required',
    rule: 'required-added',
    path: '$.note',
    before: z.object({ note: z.string().optional() }),
    breaking: z.object({ note: z.string() }),
    widening: z.object({ note: z.string().nullable().optional() }),
  },
  {
    name: 'a const changes',
    rule: 'const-changed',
    path: '$.schema',
    before: z.object({ schema: z.literal('orders/1') }),
    breaking: z.object({ schema: z.literal('orders/2') }),
    widening: z.object({ schema: z.enum(['orders/1', 'orders/2']) }),
  },
  {
    name: 'extra properties are refused (strictObject)',
    rule: 'additional-properties-tightened',
    path: '$',
    before: z.object({ id: z.string() }),
    breaking: z.strictObject({ id: z.string() }),
    widening: z.looseObject({ id: z.string() }),
  },
  {
    name: 'a record narrows its values',
    rule: 'type-narrowed',
    path: '$.counts.*',
    before: z.object({ counts: z.record(z.string(), z.number()) }),
    breaking: z.object({ counts: z.record(z.string(), z.number().int()) }),
    widening: z.object({ counts: z.record(z.string(), z.union([z.number(), z.null()])) }),
  },
  {
    name: 'a field of a nested object is removed',
    rule: 'field-removed',
    path: '$.customer.address.zip',
    before: z.object({ customer: z.object({ address: z.object({ zip: z.string(), city: z.string() }) }) }),
    breaking: z.object({ customer: z.object({ address: z.object({ city: z.string() }) }) }),
    widening: z.object({
      customer: z.object({ address: z.object({ zip: z.string(), city: z.string(), country: z.string().optional() }) }),
    }),
  },
  {
    name: 'the items of an array narrow',
    rule: 'type-narrowed',
    path: '$.lines[].qty',
    before: z.object({ lines: z.array(line) }),
    breaking: z.object({ lines: z.array(z.object({ sku: z.string(), qty: z.number().int() })) }),
    widening: z.object({ lines: z.array(line.extend({ price: z.number().optional() })) }),
  },
  {
    name: 'a schema reused through $defs ($ref) loses a field',
    rule: 'field-removed',
    path: '$.shipTo.city',
    before: z.object({ billTo: addressBefore, shipTo: addressBefore }),
    breaking: z.object({ billTo: addressBreaking, shipTo: addressBreaking }),
    widening: z.object({ billTo: addressWidening, shipTo: addressWidening }),
  },
  {
    name: 'a recursive schema ($ref: #) changes, compared once',
    rule: 'type-narrowed',
    path: '$.tree.rank',
    before: z.object({ tree: recursive(z.number()) }),
    breaking: z.object({ tree: recursive(z.number().int()) }),
    widening: z.object({ tree: recursive(z.number().nullable()) }),
  },
  {
    name: 'a member of a discriminated union (oneOf) is removed',
    rule: 'union-member-removed',
    path: '$.payment',
    before: z.object({
      payment: z.discriminatedUnion('method', [
        z.object({ method: z.literal('card'), last4: z.string() }),
        z.object({ method: z.literal('cash') }),
      ]),
    }),
    breaking: z.object({
      payment: z.discriminatedUnion('method', [z.object({ method: z.literal('card'), last4: z.string() })]),
    }),
    widening: z.object({
      payment: z.discriminatedUnion('method', [
        z.object({ method: z.literal('card'), last4: z.string() }),
        z.object({ method: z.literal('cash') }),
        z.object({ method: z.literal('voucher'), code: z.string() }),
      ]),
    }),
  },
  {
    name: 'a member of a discriminated union gains a required field',
    rule: 'required-added',
    path: '$.payment.last4',
    before: z.object({
      payment: z.discriminatedUnion('method', [
        z.object({ method: z.literal('card') }),
        z.object({ method: z.literal('cash') }),
      ]),
    }),
    breaking: z.object({
      payment: z.discriminatedUnion('method', [
        z.object({ method: z.literal('card'), last4: z.string() }),
        z.object({ method: z.literal('cash') }),
      ]),
    }),
    widening: z.object({
      payment: z.discriminatedUnion('method', [
        z.object({ method: z.literal('card'), last4: z.string().optional() }),
        z.object({ method: z.literal('cash') }),
      ]),
    }),
  },
]);

/** A category tree: each child is the same schema (zod writes `$ref: '#'`). */
function recursive(rank: z.ZodType) {
  const category = z.object({
    name: z.string(),
    rank,
    get children(): z.ZodArray<typeof category> {
      return z.array(category);
    },
  });
  return category;
}
