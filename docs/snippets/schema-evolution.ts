import {
  createConsumer,
  createMessage,
  createSchemaRegistry,
  defineEvent,
  defineMessage,
  type EventOfDefinition,
  isValidationError,
  type MessageOfDefinition,
  type ValidationIssue,
} from '@factline/core';
import { getSqliteEventStore, getSqliteTransport } from '@factline/sqlite';
import { toStandardJsonSchema } from '@valibot/to-json-schema';
import { type } from 'arktype';
import { checkSchemas, formatSchemaReport, writeSchemaSnapshot } from 'factline';
import * as v from 'valibot';
import { z } from 'zod';

// #region define
const placedV1 = z.object({ orderId: z.string(), total: z.number() });

const OrderPlaced = defineEvent({
  type: 'OrderPlaced',
  version: 2, // 1 until orders had a currency
  schema: placedV1.extend({ currency: z.string().length(3) }),
  // One pure step per older version: the data of v1 in, the data of v2 out.
  upcasters: { 1: (v1: z.infer<typeof placedV1>) => ({ ...v1, currency: 'EUR' }) },
});
type Placed = EventOfDefinition<typeof OrderPlaced>; // Event<'OrderPlaced', { orderId; total; currency }>
// #endregion

// #region other-libraries
const OrderPaid = defineEvent({
  type: 'OrderPaid',
  version: 1,
  // valibot 1, wrapped so that `factline schema` can read its JSON Schema
  schema: toStandardJsonSchema(v.object({ orderId: v.string(), amount: v.pipe(v.number(), v.minValue(0)) })),
});
const ShipOrder = defineMessage({
  type: 'ShipOrder',
  version: 1,
  schema: type({ orderId: 'string', carrier: "'post' | 'courier'" }), // arktype 2
});
// #endregion

// #region registry
// Checked here, at start: a duplicate type, a version gap or a missing upcaster throws a ValidationError.
export const schemas = createSchemaRegistry([OrderPlaced, OrderPaid, ShipOrder], { unknownTypes: 'error' });
// #endregion

/** A file as an older release left it, an order placed at v1; then read, and appended to, with the registry. */
export async function upgradeOrders(path: string) {
  const olderRelease = getSqliteEventStore({ path });
  await olderRelease.append('order-1', [{ type: 'OrderPlaced', data: { orderId: '1', total: 30 } }]);
  await olderRelease.close();

  // #region store
  const store = getSqliteEventStore({ path, schemas }); // getPostgresEventStore and the in-memory store take it too
  // #endregion
  try {
    // #region read
    const { events } = await store.readStream<Placed>('order-1'); // stored at v1 by an older release
    const currency = events[0]?.data.currency; // 'EUR', from the upcaster; the stored row still holds v1
    // #endregion
    let issues: readonly ValidationIssue[] = [];
    // #region append
    try {
      await store.append('order-2', [{ type: 'OrderPlaced', data: { orderId: '2', total: '12' } }]);
    } catch (error) {
      if (!isValidationError(error)) throw error;
      issues = error.issues; // every issue, paths under the event: events[0].data.total, events[0].data.currency
    }
    // #endregion
    const stored = store.database.prepare('SELECT schema_version, data FROM factline_events').all();
    return { currency, events, issues, stored, head: await store.headPosition() };
  } finally {
    await store.close();
  }
}

/** A ShipOrder sent at version 1, handled through a consumer that decodes with the registry. */
export async function shipWithSchemas(path: string) {
  const store = getSqliteEventStore({ path, schemas });
  const transport = getSqliteTransport({ database: store.database, pollIntervalMs: 10 });
  const shipped: string[] = [];
  const ship = (orderId: string, carrier: string) => shipped.push(`${orderId} by ${carrier}`);
  // #region consumer
  const shipping = createConsumer<undefined, MessageOfDefinition<typeof ShipOrder>>({
    name: 'shipping',
    topic: 'shipping',
    transport,
    schemas, // each message is decoded to its current version before the handler; a failure is retried, then dead-lettered
    handler: (message) => ship(message.data.orderId, message.data.carrier),
  });
  // #endregion
  await shipping.start();
  await transport.publish('shipping', [createMessage({ type: 'ShipOrder', data: { orderId: '1', carrier: 'post' } })]);
  return {
    shipped,
    shipping,
    close: async () => [await shipping.stop(), await transport.close(), await store.close()],
  };
}

// #region rename-field
// `mail` becomes `email`: a new version whose upcaster moves the field; the type name stays.
const CustomerRegistered = defineEvent({
  type: 'CustomerRegistered',
  version: 2,
  schema: z.object({ customerId: z.string(), email: z.string() }),
  upcasters: { 1: ({ mail, ...rest }: { customerId: string; mail: string }) => ({ ...rest, email: mail }) },
});
// #endregion

// #region rename-type
// `OrderVoided` replaces `OrderCancelled`: a new type, not a rename. The old one is no
// longer written, and stays defined (and handled) as long as stored events have it.
/** @deprecated written until release 4; read only */
const OrderCancelled = defineEvent({ type: 'OrderCancelled', version: 1, schema: z.object({ orderId: z.string() }) });
const OrderVoided = defineEvent({
  type: 'OrderVoided',
  version: 1,
  schema: z.object({ orderId: z.string(), reason: z.string() }),
});
type Ended = EventOfDefinition<typeof OrderCancelled | typeof OrderVoided>;
const reasonOf = (event: Ended) => (event.type === 'OrderVoided' ? event.data.reason : 'cancelled');
// #endregion

/** The renamed field and type, decoded through a registry. */
export function renamed() {
  const registry = createSchemaRegistry([CustomerRegistered, OrderCancelled, OrderVoided]);
  const customer = registry.decode('event', 'CustomerRegistered', 1, { customerId: 'c-1', mail: 'ada@example.com' });
  const reasons = [
    reasonOf({ type: 'OrderCancelled', data: { orderId: '1' } }),
    reasonOf({ type: 'OrderVoided', data: { orderId: '2', reason: 'fraud' } }),
  ];
  return { customer, reasons };
}

/** Writes the snapshot of `schemas` into `dir`, then checks `schemas` and a breaking edit of it against the files. */
export function checkAgainst(dir: string) {
  writeSchemaSnapshot(dir, schemas); // what `factline schema snapshot` does
  const edited = defineEvent({ ...OrderPlaced, schema: placedV1 }); // `currency` gone, still version 2
  const broken = schemas.definitions().map((d) => (d.type === 'OrderPlaced' ? edited : d));
  const results: { ok: boolean; text: string }[] = [];
  for (const registry of [schemas, broken]) {
    // #region check
    const report = checkSchemas(registry, dir); // the folder `factline schema snapshot` wrote
    if (!report.ok) console.error(formatSchemaReport(report)); // the report `factline schema check` prints
    // #endregion
    results.push({ ok: report.ok, text: formatSchemaReport(report) });
  }
  return results;
}
