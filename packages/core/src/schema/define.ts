import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { SchemaKind } from '../errors/index.ts';
import type { Message } from '../messaging/message.ts';
import type { Event } from '../store/types.ts';

export type { StandardSchemaV1 };

/**
 * A pure one-step upcaster: the data of version N in, the data of version
 * N + 1 out. Its parameter is typed by the one who writes it (`(v1: PlacedV1) => …`).
 */
export type Upcaster = (data: never) => unknown;

/** Upcasters keyed by the version they read: `{ 1: (v1) => v2, 2: (v2) => v3 }`. */
export type Upcasters = Readonly<Record<number, Upcaster>>;

/** What `defineEvent` and `defineMessage` take. */
export interface SchemaDefinitionInput<Type extends string, Schema extends StandardSchemaV1> {
  /** The event or message type, as stored (`'OrderPlaced'`). */
  type: Type;
  /** The current version: an integer >= 1. Appends are stamped with it. */
  version: number;
  /** Any Standard Schema v1 (zod 4, valibot 1, arktype 2…) for the current version's data. */
  schema: Schema;
  /** One upcaster per older version: for version 3, the ones reading 1 and 2. */
  upcasters?: Upcasters;
}

/** A versioned type: what a registry is made of. `Data` is the current version's data. */
export interface SchemaDefinition<
  Kind extends SchemaKind = SchemaKind,
  Type extends string = string,
  Schema extends StandardSchemaV1 = StandardSchemaV1,
> {
  readonly kind: Kind;
  readonly type: Type;
  readonly version: number;
  readonly schema: Schema;
  readonly upcasters: Upcasters;
}

export type EventDefinition<
  Type extends string = string,
  Schema extends StandardSchemaV1 = StandardSchemaV1,
> = SchemaDefinition<'event', Type, Schema>;

export type MessageDefinition<
  Type extends string = string,
  Schema extends StandardSchemaV1 = StandardSchemaV1,
> = SchemaDefinition<'message', Type, Schema>;

/** The current data of a definition: its schema's output type. */
export type DataOfDefinition<D extends SchemaDefinition> = StandardSchemaV1.InferOutput<D['schema']>;

/**
 * The event a definition describes, at its current version; a union of
 * definitions gives the union of their events.
 *
 * @example
 * type OrderEvent = EventOfDefinition<typeof OrderPlaced | typeof OrderPaid>;
 * const { events } = await store.readStream<OrderEvent>('order-1');
 */
export type EventOfDefinition<D extends SchemaDefinition> = D extends SchemaDefinition
  ? Event<D['type'], DataOfDefinition<D>>
  : never;

/**
 * The message a definition describes, at its current version.
 *
 * @example
 * createConsumer<undefined, MessageOfDefinition<typeof ShipOrder>>({ ..., schemas, handler: (m) => ship(m.data.orderId) });
 */
export type MessageOfDefinition<D extends SchemaDefinition> = D extends SchemaDefinition
  ? Message<D['type'], DataOfDefinition<D>>
  : never;

function define<Kind extends SchemaKind, Type extends string, Schema extends StandardSchemaV1>(
  kind: Kind,
  input: SchemaDefinitionInput<Type, Schema>,
): SchemaDefinition<Kind, Type, Schema> {
  // Frozen copies: a registry checked at start must not change under it.
  return Object.freeze({
    kind,
    type: input?.type,
    version: input?.version,
    schema: input?.schema,
    upcasters: Object.freeze({ ...input?.upcasters }),
  });
}

/**
 * Defines a versioned event type: its current version, its schema (any
 * Standard Schema v1) and the upcasters from older versions. Checked when
 * given to `createSchemaRegistry`.
 *
 * @example
 * const OrderPlaced = defineEvent({
 *   type: 'OrderPlaced',
 *   version: 2,
 *   schema: z.object({ orderId: z.string(), total: z.number(), currency: z.string() }),
 *   upcasters: { 1: (v1: { orderId: string; total: number }) => ({ ...v1, currency: 'EUR' }) },
 * });
 * type Placed = EventOfDefinition<typeof OrderPlaced>; // Event<'OrderPlaced', { orderId; total; currency }>
 */
export function defineEvent<Type extends string, Schema extends StandardSchemaV1>(
  input: SchemaDefinitionInput<Type, Schema>,
): EventDefinition<Type, Schema> {
  return define('event', input);
}

/**
 * Defines a versioned message type (a command or a message sent through a
 * transport or an outbox), the same way as `defineEvent`.
 *
 * @example
 * const ShipOrder = defineMessage({ type: 'ShipOrder', version: 1, schema: v.object({ orderId: v.string() }) });
 */
export function defineMessage<Type extends string, Schema extends StandardSchemaV1>(
  input: SchemaDefinitionInput<Type, Schema>,
): MessageDefinition<Type, Schema> {
  return define('message', input);
}
