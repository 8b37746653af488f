import type { Lease } from './types.ts';

/**
 * The check a holder makes before each unit of work (a batch committed, a
 * run of messages published): `holds()` is true while the lease is held,
 * renewing it first when the last renewal is `renewEveryMs` old. Work that
 * keeps the event loop busy (a projection catching up on a synchronous
 * database) never lets the lease timer run, so it renews its lease here.
 */
export interface LeaseGuard {
  holds(): Promise<boolean>;
  /** True while the lease is held by what the holder knows, without renewing. */
  holdsNow(): boolean;
  /** Renews now (the leased loop's own check); the next `holds()` renews only `renewEveryMs` later. */
  renew(): Promise<boolean>;
}

export function createLeaseGuard(lease: Lease, renewEveryMs: number, now: () => number = Date.now): LeaseGuard {
  let renewedAt = now();
  const renew = () => {
    renewedAt = now();
    return lease.renew();
  };
  return {
    renew,
    holdsNow: () => lease.isHeld(),
    async holds() {
      // Expired by this holder's clock, or lost: the renewal says so (and tells the `onLost` listeners).
      if (!lease.isHeld()) return renew();
      if (now() - renewedAt < renewEveryMs) return true;
      return renew();
    },
  };
}
