import type { Delivery } from '@factline/core';
import type { Database } from 'better-sqlite3';

/**
 * Package-internal: a delivery of the SQLite transport carries its ack under
 * this key, so the SQLite inbox, when it works on the same connection, runs it
 * inside the handler's transaction. The ack then commits with the handler's
 * writes and the inbox mark, and the delivery's own `ack()` does nothing.
 */
export const ackInTransaction = Symbol('factline.sqlite.ackInTransaction');

export interface AckInTransaction {
  database: Database;
  /** Runs the ack statement (synchronously, inside the caller's transaction). */
  run(): void;
  /** Called once the transaction holding the ack committed. */
  committed(): void;
}

export function ackInTransactionOf(delivery: Delivery | undefined): AckInTransaction | undefined {
  return (delivery as { [ackInTransaction]?: AckInTransaction } | undefined)?.[ackInTransaction];
}
