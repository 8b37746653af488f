import type { Delivery } from '@factline/core';
import type pg from 'pg';

/**
 * Package-internal: a delivery of the PostgreSQL transport carries its ack
 * statement under this key, so the PostgreSQL inbox, when it works on the
 * same pool (so the same database), can run it inside the handler's
 * transaction. The ack then commits with the handler's writes and the inbox
 * mark, and the delivery's own `ack()` does nothing.
 */
export const ackInTransaction = Symbol('factline.postgres.ackInTransaction');

export interface AckInTransaction {
  pool: pg.Pool;
  /** The transport's quoted schema: its `transport_messages` table holds the delivery's row. */
  schema: string;
  /** The row's key and the delivery's lease: topic, group, seq, lease. */
  values: [string, string, string, string];
  /** Called once the transaction holding the ack committed. */
  committed(): void;
}

export function ackInTransactionOf(delivery: Delivery | undefined): AckInTransaction | undefined {
  return (delivery as { [ackInTransaction]?: AckInTransaction } | undefined)?.[ackInTransaction];
}
