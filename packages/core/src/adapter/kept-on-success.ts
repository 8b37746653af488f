/**
 * Promises kept by key until they reject: the first call for a key starts
 * the work, later calls share it, and a failure is forgotten (only if it is
 * still the one kept), so the next call tries again. For declarations and
 * checks an adapter does once per topic or group.
 */
export interface KeptOnSuccess<T> {
  /** The promise kept for `key`, or `work()`'s, kept until it rejects. */
  get(key: string, work: () => Promise<T>): Promise<T>;
  /** Forgets `key`'s promise: the next `get` starts the work again. */
  forget(key: string): void;
}

/**
 * @example
 * const checks = keptOnSuccess<void>();
 * await checks.get('orders', () => checkPartitionCount('orders')); // runs again next time only if it failed
 */
export function keptOnSuccess<T>(): KeptOnSuccess<T> {
  const kept = new Map<string, Promise<T>>();
  return {
    get(key, work) {
      const found = kept.get(key);
      if (found) return found;
      const started = work();
      kept.set(key, started);
      started.catch(() => {
        if (kept.get(key) === started) kept.delete(key);
      });
      return started;
    },
    forget(key) {
      kept.delete(key);
    },
  };
}
