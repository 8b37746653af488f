/**
 * Announcing appends to runners in this process: after each commit that
 * appended events, every listener gets the new head position, once.
 */
export interface AppendSignal {
  /** Adds a listener of new head positions; returns its removal. */
  onAppend(listener: (position: number) => void): () => void;
  /** Records the head an append reached (inside the write transaction). */
  noteAppended(position: number): void;
  /** After a commit: calls the listeners when the head moved. */
  signal(): void;
  /** Drops the listeners. */
  close(): void;
}

export function createAppendSignal(): AppendSignal {
  const listeners = new Set<(position: number) => void>();
  let appendedHead = 0;
  let signalledHead = 0;
  return {
    onAppend(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    noteAppended(position) {
      if (position > appendedHead) appendedHead = position;
    },
    signal() {
      if (appendedHead <= signalledHead) return;
      signalledHead = appendedHead;
      for (const listener of listeners) listener(appendedHead);
    },
    close() {
      listeners.clear();
    },
  };
}
