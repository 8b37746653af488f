import type { StandardSchemaV1 } from '@standard-schema/spec';
import { defineEvent, type EventOfDefinition } from '../../schema/define.ts';
import { createSchemaRegistry, type SchemaRegistry, type SchemaRegistryOptions } from '../../schema/registry.ts';

type FieldCheck = (value: unknown) => string | undefined;

/**
 * A hand-written Standard Schema v1 for an object of checked fields (core's
 * suites cannot depend on a validator library): extra keys are dropped from
 * the output, as zod's objects do. `check` runs asynchronously when given,
 * to prove validators are awaited.
 */
export function objectSchema<T>(
  fields: Record<string, FieldCheck>,
  check?: (value: T) => Promise<StandardSchemaV1.Issue | undefined>,
): StandardSchemaV1<unknown, T> {
  const validate = (value: unknown): StandardSchemaV1.Result<T> | Promise<StandardSchemaV1.Result<T>> => {
    if (typeof value !== 'object' || value === null) return { issues: [{ message: 'expected an object' }] };
    const issues: StandardSchemaV1.Issue[] = [];
    const output: Record<string, unknown> = {};
    for (const [key, checkField] of Object.entries(fields)) {
      const field = (value as Record<string, unknown>)[key];
      const problem = checkField(field);
      if (problem) issues.push({ message: problem, path: [{ key }] });
      else output[key] = field;
    }
    if (issues.length > 0) return { issues };
    if (!check) return { value: output as T };
    return check(output as T).then((issue) => (issue ? { issues: [issue] } : { value: output as T }));
  };
  return { '~standard': { version: 1, vendor: 'factline-test', validate } };
}

export const isString: FieldCheck = (v) => (typeof v === 'string' ? undefined : 'expected a string');
export const isNonNegative: FieldCheck = (v) =>
  typeof v === 'number' && v >= 0 ? undefined : 'expected a number >= 0';
const isAmount: FieldCheck = (v) => {
  const amount = v as { value?: unknown; currency?: unknown } | null;
  if (typeof amount !== 'object' || amount === null) return 'expected an amount';
  return isNonNegative(amount.value) ?? isString(amount.currency);
};

export interface PlacedV1 {
  orderId: string;
  total: number;
}
export interface PlacedV2 extends PlacedV1 {
  currency: string;
}
export interface PlacedV3 {
  orderId: string;
  amount: { value: number; currency: string };
}

/** At version 3: v1 had `total`, v2 added `currency` (EUR before), v3 nests both in `amount`. */
export const OrderPlaced = defineEvent({
  type: 'OrderPlaced',
  version: 3,
  schema: objectSchema<PlacedV3>({ orderId: isString, amount: isAmount }),
  upcasters: {
    1: (v1: PlacedV1): PlacedV2 => ({ ...v1, currency: 'EUR' }),
    2: (v2: PlacedV2): PlacedV3 => ({ orderId: v2.orderId, amount: { value: v2.total, currency: v2.currency } }),
  },
});

/** Its upcaster from version 1 always throws. */
export const Garbled = defineEvent({
  type: 'Garbled',
  version: 2,
  schema: objectSchema<{ text: string }>({ text: isString }),
  upcasters: {
    1: (): never => {
      throw new Error('cannot read version 1');
    },
  },
});

/** Validated asynchronously: a sku is known when it starts with `SKU-`. */
export const ItemReserved = defineEvent({
  type: 'ItemReserved',
  version: 1,
  schema: objectSchema<{ sku: string }>({ sku: isString }, async (value) => {
    await new Promise((resolve) => setImmediate(resolve));
    return value.sku.startsWith('SKU-') ? undefined : { message: 'unknown sku', path: ['sku'] };
  }),
});

export type SuiteEvent = EventOfDefinition<typeof OrderPlaced | typeof Garbled | typeof ItemReserved>;

/** The suite's registry: `OrderPlaced` v3, `Garbled` v2, `ItemReserved` v1. */
export function suiteSchemas(options?: SchemaRegistryOptions): SchemaRegistry {
  return createSchemaRegistry([OrderPlaced, Garbled, ItemReserved], options);
}
