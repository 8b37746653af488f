// The order events' versioned types: the registry the stores, the projections and
// the services decode through, and the one `factline schema check` compares with
// the snapshot in ../schemas (npm run schema:check).
import { createSchemaRegistry, defineEvent } from '@factline/core';
import { z } from 'zod';

const orderId = z.string().min(1);

export const orderItem = z.object({
  sku: z.string().min(1),
  quantity: z.number().int().positive(),
  unitPrice: z.number().nonnegative(),
});

/** `OrderPlaced` as version 1 stored it, before orders had a currency: what the upcaster reads. */
export const orderPlacedV1 = z.object({
  orderId,
  customerId: z.string().min(1),
  items: z.array(orderItem).min(1),
  total: z.number().nonnegative(),
});
export type OrderPlacedV1 = z.infer<typeof orderPlacedV1>;

/** The currency of every order placed before version 2: the shop sold in euros only. */
export const defaultCurrency = 'EUR';

/** Version 2 adds `currency` (ISO 4217); stored version 1 events are read with the default filled in. */
export const orderPlaced = defineEvent({
  type: 'OrderPlaced',
  version: 2,
  schema: orderPlacedV1.extend({ currency: z.string().regex(/^[A-Z]{3}$/) }),
  upcasters: { 1: (v1: OrderPlacedV1) => ({ ...v1, currency: defaultCurrency }) },
});

export const orderPaid = defineEvent({
  type: 'OrderPaid',
  version: 1,
  schema: z.object({ orderId, amount: z.number().positive() }),
});

export const orderShipped = defineEvent({
  type: 'OrderShipped',
  version: 1,
  schema: z.object({ orderId, carrier: z.string().min(1) }),
});

export const orderCancelled = defineEvent({
  type: 'OrderCancelled',
  version: 1,
  schema: z.object({ orderId, reason: z.string().min(1) }),
});

/** A charge given back: the payment service's answer to `RefundPayment` for an order it had charged. */
export const paymentRefunded = defineEvent({
  type: 'PaymentRefunded',
  version: 1,
  schema: z.object({ orderId, amount: z.number().positive(), currency: z.string().regex(/^[A-Z]{3}$/) }),
});

/**
 * The payment service's answer to `RefundPayment` for an order it had not
 * charged: nothing to give back, and no charge for that order from then on
 * (a `ChargePayment` arriving later is answered with `PaymentFailed`).
 */
export const paymentVoided = defineEvent({ type: 'PaymentVoided', version: 1, schema: z.object({ orderId }) });

// The fulfilment saga's answers from the services, in their own streams (stock-…, payment-…).
const stockItems = z.array(orderItem);

export const stockReserved = defineEvent({
  type: 'StockReserved',
  version: 1,
  schema: z.object({ orderId, items: stockItems }),
});

export const stockReleased = defineEvent({
  type: 'StockReleased',
  version: 1,
  schema: z.object({ orderId, items: stockItems }),
});

export const paymentCharged = defineEvent({ type: 'PaymentCharged', version: 1, schema: z.object({ orderId }) });

export const paymentFailed = defineEvent({
  type: 'PaymentFailed',
  version: 1,
  schema: z.object({ orderId, reason: z.string().min(1) }),
});

/**
 * The example's registry, checked here at start. `unknownTypes: 'error'`:
 * the order streams, the saga's answer streams and the services' topic carry these types only, so any
 * other is refused on append and fails on read instead of passing unchecked.
 */
export const orderSchemas = createSchemaRegistry(
  [
    orderPlaced,
    orderPaid,
    orderShipped,
    orderCancelled,
    stockReserved,
    stockReleased,
    paymentCharged,
    paymentFailed,
    paymentRefunded,
    paymentVoided,
  ],
  {
    unknownTypes: 'error',
  },
);

// `factline schema check --registry src/schemas.ts` picks the export named `registry`.
export { orderSchemas as registry };
