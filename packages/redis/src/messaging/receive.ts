import type { Message } from '@factline/core';
import { type BufferedEntry, createDeliveryBuffer, messageFromJson } from '@factline/core/adapter';
import { type AckTarget, type AckWithMark, ackWithMark, type LeaseHolder } from './ack-with-mark.ts';
import type { RawEntry } from './stream-replies.ts';

/** One stream entry a process holds for a group (pending under its consumer name) until it is acked or released. */
export interface Entry extends BufferedEntry {
  /** The stream entry id. */
  id: string;
  /** The partition's lease generation it was read under; a later one means the lease changed hands since. */
  generation: number;
  /** The message as stored (`messageToJson`). */
  json: string;
  /** Hand-outs its stream entry carries (`n`: those of the message it is a copy of), part of `count`. */
  carried: number;
  /** `message`, until its first hand-out takes it (later hand-outs parse `json` again: a handler may change it). */
  fresh?: Message | undefined;
}

/**
 * The buffer entries of a page of `raw` stream entries read or claimed for `partition` under lease
 * `generation`: `skipped` the ids to ack unread (another group's, or `unreadable`: not a Factline message),
 * leaving out the ids in `held` (claimed again while still held here). Hand-outs so far come from `counts`
 * (a claimed entry) or what the entry carries.
 */
export function entriesOf(
  raw: readonly RawEntry[],
  at: { partition: number; generation: number; group: string; counts?: Map<string, number>; held?: Set<string> },
): { added: Entry[]; skipped: string[]; unreadable: { id: string; error: unknown }[] } {
  const { partition, generation, group, counts, held } = at;
  const added: Entry[] = [];
  const skipped: string[] = [];
  const unreadable: { id: string; error: unknown }[] = [];
  for (const { id, fields } of raw) {
    if (!fields || (fields.o !== undefined && fields.o !== group)) {
      skipped.push(id);
      continue;
    }
    if (held?.has(id)) continue;
    try {
      const json = fields.m ?? '';
      const message = messageFromJson(json);
      const carried = Number(fields.n ?? 0);
      const count = counts?.get(id) ?? carried;
      added.push({
        id,
        fresh: message,
        partition,
        generation,
        message,
        json,
        carried,
        visibleAt: 0,
        count,
        lease: 0,
        holder: undefined,
      });
    } catch (error) {
      unreadable.push({ id, error });
      skipped.push(id);
    }
  }
  return { added, skipped, unreadable };
}

/** What the buffer needs from its reader to settle an entry in Redis. */
export interface Settler {
  /** True while this process holds the entry's partition under the generation it was read with. */
  current(entry: Entry): boolean;
  /** True while the entry's partition may hand out more (held, ready, not being given up). */
  active(partition: number): boolean;
  /** True while the entry's key waits for an earlier entry's ack that Redis refused and that is tried again. */
  waits(entry: Entry): boolean;
  /**
   * `XACK`s the entry while this reader's lease of its partition holds (else leaves it to the new holder);
   * called even after this process saw its lease move on: unless Redis shows another holder, a duplicate is avoided.
   */
  ack(entry: Entry): Promise<void>;
  /** Where the entry's ack goes when the Redis inbox writes it with the mark (see ack-with-mark.ts). */
  ackTarget(entry: Entry): AckTarget;
  /** The inbox acked the entry with its mark: there is room for more. */
  acked(): void;
  /** The entry's partition lease was found with another holder (it is that holder's now), or none (it ran out). */
  fenced(entry: Entry, holder: LeaseHolder): void;
  /** Acks the entry and schedules its copy for `dueAt` (sorted set); false when that failed. */
  delay(entry: Entry, dueAt: number): Promise<boolean>;
}

/**
 * The entries a process holds for one group: the broker transports' shared
 * buffer (`createDeliveryBuffer`: per key one subscription at a time, in
 * order; visibility timeouts; `release(0)` kept here, a delayed release to
 * the sorted set of due messages with its key parked until the message is
 * back or `parkGraceMs` after it was due), with what Redis adds: hand-outs
 * only while the partition's lease holds under the generation read with,
 * a fresh message on every hand-out after the first, none of a key whose
 * earlier entry's refused ack is being tried again, and the delivery's
 * ack-with-mark for the Redis inbox.
 */
export function createGroupBuffer(
  settler: Settler,
  options: { parkGraceMs: number; onDelayError?: (error: unknown) => void },
) {
  return createDeliveryBuffer<Entry>(
    {
      holds: settler.current,
      offers: (entry) => settler.active(entry.partition) && !settler.waits(entry),
      ack: settler.ack,
      delay: settler.delay,
      messageOf(entry) {
        const message = entry.fresh ?? messageFromJson(entry.json);
        entry.fresh = undefined;
        return message;
      },
      // The Redis inbox acks the entry in the script writing the mark, and tells the outcome here.
      deliveryFields(entry, settlement) {
        const settle: AckWithMark = {
          target: settler.ackTarget(entry),
          id: entry.id,
          current: settlement.current,
          acked() {
            settlement.settled();
            settler.acked();
          },
          fenced(holder) {
            settlement.settled();
            settler.fenced(entry, holder);
          },
        };
        return { [ackWithMark]: settle };
      },
    },
    // Only `release(0)` (under a millisecond) stays here: a delay goes to the sorted set.
    { parkGraceMs: options.parkGraceMs, holdBelowMs: 1, onDelayError: options.onDelayError },
  );
}

export type GroupBuffer = ReturnType<typeof createGroupBuffer>;
