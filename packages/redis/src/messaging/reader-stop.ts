import { TransportError } from '@factline/core';
import { settledWithin } from '@factline/core/adapter';
import { CLOSE_WAIT_MS } from '../connection.ts';
import type { LeaseTicks } from './lease-ticks.ts';
import type { ReaderContext } from './reader-context.ts';

/** What a group reader's stop works with, as it stands when the stop begins. */
export interface ReaderStopParts {
  context: ReaderContext;
  ticks: LeaseTicks;
  /** The reader's start and its reading loop, when under way. */
  started: Promise<void> | undefined;
  reading: Promise<void> | undefined;
  /** Ends the blocking read (the reading loop then ends). */
  dropConnection(): void;
  /** Resolves once the deliveries out are settled, or `ms` passed. */
  settled(ms: number): Promise<unknown>;
  /** Hands back every partition still held (what is pending, the lease), failures reported. */
  handBackHeld(): Promise<unknown>;
}

/**
 * The second half of a group reader's stop (the first stops reading and
 * handing out): waits for the start and the round under way, ends the read,
 * waits up to 5 s for the deliveries out to be settled while the leases are
 * still renewed (`ticks`), then ends the renewals, hands the partitions back
 * and leaves the group's readers. Bounded: a Redis that stopped answering
 * without closing the connection is given up after `5000 + CLOSE_WAIT_MS`
 * ms, told, and the partitions are free when their leases end.
 *
 * @example
 * await leaveGroup({ context, ticks, started, reading, dropConnection, settled, handBackHeld });
 */
export async function leaveGroup(parts: ReaderStopParts): Promise<void> {
  const { context, ticks } = parts;
  const { client, keys, topic, group, consumer } = context;
  const leaving = (async () => {
    await parts.started?.catch(() => undefined);
    await ticks.running()?.catch(() => undefined);
    parts.dropConnection();
    await parts.reading?.catch(() => undefined);
    await parts.settled(5000);
    // A renewal sent before goes ahead of the hand-back on the connection; one answered after it changes nothing.
    ticks.end();
    await parts.handBackHeld();
    // Left behind, the entry still ends at its expiry (one lease time): until then the others count one reader too many.
    // Not tried while the connection is down (it would wait for the command deadline to fail).
    const leave = client.isReady
      ? client.sendCommand(['ZREM', keys.readers(topic, group), consumer])
      : Promise.reject(new TransportError('not connected to Redis'));
    await leave.catch((error: unknown) =>
      context.report(
        new TransportError(`${consumer} could not leave the readers of ${topic}/${group}: ${String(error)}`, {
          cause: error,
        }),
        'lease',
      ),
    );
  })();
  // A command already sent waits for its answer without a deadline: a Redis that stopped answering without
  // closing the connection would hold the stop until the operating system's TCP timeout.
  if (!(await settledWithin(leaving, 5000 + CLOSE_WAIT_MS))) {
    ticks.end();
    parts.dropConnection();
    context.report(
      new TransportError(
        `${consumer} stopped without Redis answering within ${CLOSE_WAIT_MS} ms: its partitions of ${topic}/${group} are free when their leases end`,
      ),
      'lease',
    );
  }
}
