import type { SubscriptionWaits } from './receive-wakeups.ts';
import type { Delivery } from './transport.ts';

export interface ReceiveLoop {
  /** When the receive gives up and returns nothing (`Date.now()` time). */
  deadline: number;
  signal: AbortSignal;
  /** The subscription's waits: a publish or a freed key on its channel ends a pause early. */
  waits: SubscriptionWaits;
  /** True once the transport or the subscription is closed. */
  ended(): boolean;
  /** Claims what is due now (an empty array when nothing is). */
  take(): Delivery[] | Promise<Delivery[]>;
  /** How long to wait, at most `left` ms, before looking again (e.g. until the next delayed row is due). */
  pause(left: number): number | Promise<number>;
}

/**
 * A queue transport's `receive` once its arguments are checked: looks for
 * deliveries, and while there are none, waits for a wake-up or the adapter's
 * pause, until the deadline, the abort, or the close. A wake-up that comes
 * while a look is in flight ends the next wait at once.
 *
 * @example
 * return receiveUntilDeadline({ deadline: Date.now() + waitMs, signal, waits, ended, take, pause: () => 100 });
 */
export async function receiveUntilDeadline(loop: ReceiveLoop): Promise<Delivery[]> {
  const { deadline, signal, waits, ended } = loop;
  for (;;) {
    const seen = waits.generation();
    const found = await loop.take();
    if (found.length > 0) return found;
    if (signal.aborted || ended()) return [];
    const left = deadline - Date.now();
    if (left <= 0) return [];
    await waits.wait(seen, await loop.pause(left), signal);
    if (signal.aborted || ended()) return [];
  }
}
