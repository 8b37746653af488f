import type { ChannelModel } from 'amqplib';
import { checkQueues } from './check-queues.ts';

/**
 * The ready messages of `queues` summed, by passive declares on a channel of
 * its own (`checkQueues`): a missing queue counts 0, the transport's
 * publishing and consuming channels never see its 404. Creates nothing.
 * Ready only: AMQP tells no queue's unacknowledged messages, nor their ages.
 *
 * @example
 * await readyMessages(connection, ['shop.orders.billing.0', 'shop.orders.billing.1']); // 3
 */
export async function readyMessages(connection: ChannelModel, queues: readonly string[]): Promise<number> {
  let ready = 0;
  await checkQueues(connection, queues, (_, count) => {
    ready += count ?? 0;
    return true;
  });
  return ready;
}

/** What a group's reader in this process tells a backlog: what it holds, and how many deliveries came so far. */
export interface HeldCount {
  /** Unacknowledged deliveries and releases away in a delay tier. */
  waiting(): number;
  /** Deliveries from the group queues so far (rises only). */
  arrived(): number;
}

/** Reads of the queues a backlog makes while deliveries keep arriving, before it settles for an estimate. */
export const BACKLOG_READS = 3;

/**
 * A group's backlog: the ready messages of its queues (`readReady`) plus
 * what this process holds of the group. The two cannot be read at one
 * instant: a delivery that arrives while the broker is asked may have been
 * counted ready there and is held here when the answer comes, so it would
 * count twice (3 messages told as 6). The held count is therefore taken with
 * the answer, and a read during which deliveries arrived is made again; after
 * `BACKLOG_READS` such reads the arrivals of the last one are taken as
 * counted by the broker: the figure may then be low by those arrivals, never
 * high, and never below what this process holds.
 *
 * @example
 * await groupBacklog(() => readyMessages(connection, queues), reader); // 3
 */
export async function groupBacklog(readReady: () => Promise<number>, held: HeldCount | undefined): Promise<number> {
  for (let read = 1; ; read++) {
    const before = held?.arrived() ?? 0;
    const ready = await readReady();
    const during = (held?.arrived() ?? 0) - before;
    const holding = held?.waiting() ?? 0;
    if (during === 0) return ready + holding;
    if (read >= BACKLOG_READS) return Math.max(ready + holding - during, holding);
  }
}
