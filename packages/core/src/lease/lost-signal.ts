/**
 * The `onLost` side of a `Lease`: listeners added and removed, then called
 * once per loss (a listener removed meanwhile is not called).
 */
export interface LostSignal {
  onLost(listener: () => void): () => void;
  /** Calls every listener. */
  fire(): void;
}

export function createLostSignal(): LostSignal {
  const listeners = new Set<() => void>();
  return {
    onLost(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    fire() {
      for (const listener of [...listeners]) listener();
    },
  };
}
