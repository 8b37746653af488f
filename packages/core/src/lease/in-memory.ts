import { randomUUID } from 'node:crypto';
import { ValidationError } from '../errors/index.ts';
import { createLostSignal } from './lost-signal.ts';
import type { Lease, LeaseProvider } from './types.ts';

/** Who holds which lease: shared by the providers that stand for several processes. */
export type InMemoryLeaseTable = Map<string, string>;

/**
 * Leases in memory, for unit tests of work run under a lease: providers
 * created on one `table` exclude each other as processes sharing a database
 * would. `lose(name)` takes a lease away from its holder as a crash or an
 * expiry would (its `onLost` listeners are called).
 *
 * @example
 * const table = new Map();
 * const a = createInMemoryLeases(table), b = createInMemoryLeases(table);
 * await a.lease('outbox').acquire(); // true
 * await b.lease('outbox').acquire(); // false
 */
export function createInMemoryLeases(table: InMemoryLeaseTable = new Map()): LeaseProvider & {
  /** Takes the lease `name` (default: every lease this provider holds) away from this holder. */
  lose(name?: string): void;
} {
  const holder = randomUUID();
  const leases = new Map<string, Lease & { lost(): void }>();
  let closed = false;
  const make = (name: string) => {
    const signal = createLostSignal();
    let held = false;
    const lost = () => {
      if (!held) return;
      held = false;
      signal.fire();
    };
    const lease: Lease & { lost(): void } = {
      name,
      lost,
      async acquire() {
        if (closed) return false;
        const current = table.get(name);
        if (current !== undefined && current !== holder) return false;
        table.set(name, holder);
        held = true;
        return true;
      },
      async renew() {
        if (!held) return false;
        if (table.get(name) !== holder) {
          lost();
          return false;
        }
        return true;
      },
      isHeld: () => held && table.get(name) === holder,
      async release() {
        held = false;
        if (table.get(name) === holder) table.delete(name);
      },
      onLost: signal.onLost,
    };
    return lease;
  };
  return {
    lease(name) {
      if (typeof name !== 'string' || name.length === 0) {
        throw new ValidationError({ path: 'name', message: 'must be a non-empty string' });
      }
      let lease = leases.get(name);
      if (!lease) {
        lease = make(name);
        leases.set(name, lease);
      }
      return lease;
    },
    lose(name) {
      for (const lease of name === undefined ? leases.values() : [leases.get(name)]) {
        if (!lease) continue;
        if (table.get(lease.name) === holder) table.delete(lease.name);
        lease.lost();
      }
    },
    async close() {
      closed = true;
      for (const lease of leases.values()) if (lease.isHeld()) await lease.release();
    },
  };
}
