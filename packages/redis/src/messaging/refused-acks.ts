import { TransportError } from '@factline/core';
import { isPassingReply, reconnectDelay } from '../connection.ts';
import type { Entry } from './receive.ts';

export interface RefusedAckSettings {
  /** Sends the entry's fenced ack: resolves once Redis answered (also when fenced off), rejects as the call failed. */
  send(entry: Entry): Promise<void>;
  /** True while the ack may still be tried: the reader runs and holds the entry's partition under its generation. */
  current(entry: Entry): boolean;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** Told the first refusal of each entry's ack. */
  report(error: unknown): void;
  /** Told when an ack Redis refused ends (taken, fenced off or given up): its key holds nothing back any more. */
  freed(entry: Entry): void;
}

/**
 * A group reader's acks, sent again when Redis refuses them for a state that
 * passes, with the connection up (`BUSY`, `MISCONF`, `OOM`, `NOREPLICAS`,
 * `READONLY`, `LOADING`…: `isPassingReply`): the entry stays pending, and
 * without a retry it would come back only at the straggler sweep, behind its
 * key's later entries. The ack is tried again after a backoff
 * (`reconnectMinMs` doubling to `reconnectMaxMs`) while the reader holds the
 * entry's partition under the generation it was read with; from the first
 * refusal on, the entry's key is held (`holdsKey`: none of its later entries
 * goes out; one handed out between the ack and its refusal is not called
 * back). It resolves once Redis took it (or fenced it off), and rejects with
 * the last refusal once the partition is lost or the reader stops (`wake`
 * ends a backoff at once): the entry stays pending for the partition's next
 * holder, which claims it ahead of its key's later entries. Either way
 * `freed` is told, so that a receive waiting for the key's next entry looks
 * again at once. Any other failure
 * rejects at once: a dropped connection (which stops the partition's work), a
 * command deadline, or a refusal of the command itself (`NOPERM`, a script
 * error), which trying again would not change and which would hold the key
 * for good; the entry then comes back at the straggler sweep.
 *
 * @example
 * const acks = createRefusedAcks({ send, current, reconnectMinMs: 100, reconnectMaxMs: 5000, report, freed });
 * await acks.ack(entry);
 */
export function createRefusedAcks(settings: RefusedAckSettings) {
  /** The entries whose ack was refused and is tried again, each with what ends its backoff now. */
  const owed = new Map<Entry, () => void>();

  const pause = (entry: Entry, ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      owed.set(entry, done);
    });

  const ack = async (entry: Entry): Promise<void> => {
    try {
      for (let attempt = 1; ; attempt += 1) {
        try {
          return await settings.send(entry);
        } catch (error) {
          if (!isPassingReply(error) || !settings.current(entry)) throw error;
          if (attempt === 1) {
            settings.report(
              new TransportError(
                `Redis refused the ack of entry ${entry.id} (partition ${entry.partition}): ${(error as Error).message}; it is sent again while the partition is held, and the later messages of key '${entry.message.key}' wait for it`,
                { cause: error },
              ),
            );
          }
          await pause(entry, reconnectDelay(attempt, settings.reconnectMinMs, settings.reconnectMaxMs));
          if (!settings.current(entry)) throw error;
        }
      }
    } finally {
      // Its key's later entries may go out: a receive waiting for them is told now, not at its wait's end.
      if (owed.delete(entry)) settings.freed(entry);
    }
  };

  return {
    ack,
    /** Whether a refused ack of another entry of `entry`'s key and partition is still being tried. */
    holdsKey(entry: Entry): boolean {
      if (owed.size === 0) return false;
      for (const other of owed.keys()) {
        if (other !== entry && other.partition === entry.partition && other.message.key === entry.message.key)
          return true;
      }
      return false;
    },
    /** Ends every backoff now: each ack looks again whether it may still be tried (a partition lost, a stop). */
    wake() {
      for (const done of owed.values()) done();
    },
  };
}
