import { createKeyTally } from './key-tally.ts';
import type { Delivery } from './transport.ts';

/** A queue row handed out under a lease: each statement changes the row only while the lease is current. */
export interface LeasedRow {
  /** Deletes the row. */
  ack(): void | Promise<void>;
  /** Makes the row due again in `delayMs`, under no lease; returns whether it changed (the lease was current). */
  release(delayMs: number): boolean | Promise<boolean>;
  /** Keeps the row invisible for `ms` more. */
  extend(ms: number): void | Promise<void>;
}

/** A delivery's settle methods, plus `committed` for an ack the inbox ran in its own transaction. */
export interface LeasedSettlement extends Pick<Delivery, 'ack' | 'release' | 'extend'> {
  /** The ack committed with an inbox transaction: later settles do nothing. */
  committed(): void;
}

/** The deliveries of one subscription of a queue transport, counted in flight per message key. */
export interface LeasedDeliveries {
  /** The settle methods of a delivery of `key` on `row`; the key counts as in flight until the first settle. */
  handOut(key: string, row: LeasedRow): LeasedSettlement;
  /** Keys with deliveries in flight. */
  readonly keysInFlight: number;
}

const nonNegative = (ms: number) => Math.max(0, Number(ms) || 0);

/**
 * Settling a queue transport's deliveries, the same on every adapter. Under
 * per-key order a key's later rows go out once nothing of it is in flight, so
 * `wake` (this subscription's waiting receivers look again) is called when a
 * key's last delivery is settled, and after a release that made a row due.
 * Once an inbox committed a delivery's ack in its transaction, the delivery's
 * own `ack`, `release` and `extend` do nothing.
 *
 * @example
 * const deliveries = createLeasedDeliveries(() => wakeups.wake(topic));
 * const { committed, ...settle } = deliveries.handOut(message.key, { ack, release, extend });
 * return { message, deliveryCount, ...settle };
 */
export function createLeasedDeliveries(wake: () => void): LeasedDeliveries {
  const unsettled = createKeyTally(() => wake());
  return {
    handOut(key, row) {
      unsettled.handedOut(key);
      /** Acked inside a committed inbox transaction: nothing left to do. */
      let settled = false;
      let counted = false;
      const once = () => {
        if (counted) return;
        counted = true;
        unsettled.settled(key);
      };
      return {
        async ack() {
          if (!settled) await row.ack();
          once();
        },
        async release(delayMs) {
          if (settled) return;
          const released = await row.release(nonNegative(delayMs));
          once();
          if (released) wake();
        },
        async extend(ms) {
          if (!settled) await row.extend(nonNegative(ms));
        },
        committed() {
          settled = true;
          once();
        },
      };
    },
    get keysInFlight() {
      return unsettled.size;
    },
  };
}
