import { TransportError } from '@factline/core';
import { SILENCE_MS } from '../connection.ts';
import { RETURNED_CONSUMER } from '../keys.ts';
import { runScript } from '../scripts.ts';
import { createAckBatcher } from './ack-batcher.ts';
import type { AckTarget, LeaseHolder } from './ack-with-mark.ts';
import { createFairShare } from './fair-share.ts';
import { createLeaseTicks } from './lease-ticks.ts';
import { createNewEntryReader } from './new-entries.ts';
import { type PartitionState, takeOver, unheldPartition } from './partition-state.ts';
import { type ClaimedPage, createPendingClaims } from './pending-claims.ts';
import type { ReaderContext } from './reader-context.ts';
import { leaveGroup } from './reader-stop.ts';
import { createGroupBuffer, type Entry, entriesOf } from './receive.ts';
import { createRefusedAcks } from './refused-acks.ts';
import { isNoGroup, laterId, type RawEntry } from './stream-replies.ts';

/**
 * One process's reader of one group: it holds some of the topic's partitions
 * under leases (a fair share of the live readers), claims what earlier
 * holders left pending (`XAUTOCLAIM`, a page at a time as the buffer has
 * room), then reads new entries with a blocking `XREADGROUP` on a connection
 * of its own into the buffer its subscriptions take from, never holding more
 * than `prefetch` read or claimed (the stragglers of the periodic sweep
 * aside). A lease it cannot renew stops its partition's work at once. On
 * stop it reads and takes nothing more but keeps renewing its leases while
 * the deliveries out are settled, then hands its pending entries back and
 * frees its leases.
 */
export function createGroupReader(context: ReaderContext) {
  const { keys, topic, group, consumer, client } = context;
  const states: PartitionState[] = Array.from({ length: context.partitions }, unheldPartition);
  const streams = states.map((_, p) => keys.stream(topic, p));
  let stopped = false;
  // The hand-outs of the entries of a few partitions lost in a row, at least.
  const pending = createPendingClaims({
    client,
    group,
    consumer,
    mostRemembered: Math.max(10_000, 4 * context.prefetch),
  });
  let reading: Promise<void> | undefined;
  let lastTrim = Date.now();
  /** Leases are renewed every third of their time; trims ride on the same timer. */
  const tickEvery = Math.max(50, Math.min(Math.floor(context.leaseMs / 3), context.trimIntervalMs));

  /** The partitions whose state passes `test`. */
  const partitionsWhere = (test: (state: PartitionState, partition: number) => boolean) =>
    states.flatMap((state, p) => (test(state, p) ? [p] : []));

  const wakeReader = () => newEntries.wake();
  /**
   * Kept between a lease's end here and the last read of its partition's new entries: a read reaches Redis a little
   * after it is sent, and one served once the lease ended there would take entries its next holder should read.
   */
  const readMarginMs = Math.min(250, Math.floor(context.leaseMs / 10));
  /** How long new entries of a partition may still be read (a blocking read waits no longer). */
  const readableFor = (partition: number) =>
    Math.floor((states[partition] as PartitionState).expiresAt - readMarginMs - performance.now());

  const leases = states.map((_, p) => keys.lease(topic, group, p));
  const targets: AckTarget[] = states.map((_, p) => ({
    server: context.server,
    stream: streams[p] as string,
    group,
    lease: leases[p] as string,
    token: consumer,
  }));
  const acks = createAckBatcher({
    client,
    group,
    streamOf: (partition) => streams[partition] as string,
    leaseOf: (partition) => leases[partition] as string,
    token: consumer,
    acked: wakeReader,
    fenced: (partition, holder) => lose(partition, fencedBy(holder, 'an ack')),
  });

  /** Still this reader's to ack: it runs and holds the entry's partition under the generation it was read with. */
  const ackable = (entry: Entry) => {
    const state = states[entry.partition] as PartitionState;
    return !stopped && state.held && state.generation === entry.generation;
  };
  // An ack Redis refuses is sent again, its key held meanwhile: else the entry came back behind its key's later ones.
  const refusedAcks = createRefusedAcks({
    send: (entry) => acks.ack(entry.partition, entry.id),
    current: ackable,
    reconnectMinMs: context.reconnectMinMs,
    reconnectMaxMs: context.reconnectMaxMs,
    report: (error) => context.report(error, 'consume'),
    // The key's next entry may go out: the buffer cannot see that change itself.
    freed: () => buffer.wake(),
  });

  /** True while the partition's entries may be handed out (those claimed go out while the rest are claimed). */
  const active = (partition: number) => {
    const state = states[partition] as PartitionState;
    return state.held && !state.draining && performance.now() < state.expiresAt;
  };

  const buffer = createGroupBuffer(
    {
      current: (entry) => {
        const state = states[entry.partition] as PartitionState;
        return state.held && state.generation === entry.generation && performance.now() < state.expiresAt;
      },
      active,
      waits: refusedAcks.holdsKey,
      ack: refusedAcks.ack,
      ackTarget: (entry) => targets[entry.partition] as AckTarget,
      acked: wakeReader,
      fenced: (entry, holder) => {
        const state = states[entry.partition] as PartitionState;
        if (state.generation === entry.generation) lose(entry.partition, fencedBy(holder, 'an ack'));
      },
      delay: async (entry, dueAt) => {
        const outcome = await context.delay(entry, dueAt);
        wakeReader();
        if (outcome === 'fenced' || outcome === 'ran-out') {
          const state = states[entry.partition] as PartitionState;
          if (state.generation === entry.generation)
            lose(entry.partition, fencedBy(outcome === 'ran-out' ? 'none' : 'another', 'a release'));
        }
        // Nothing of it is left to come back: its key waits no longer.
        if (outcome === 'gone') buffer.unpark((parked) => parked === entry);
        return outcome === 'moved' || outcome === 'gone';
      },
    },
    { parkGraceMs: Math.max(5000, context.leaseMs), onDelayError: (error) => context.report(error, 'delay') },
  );

  /**
   * Drops the partition's entries from the buffer (they stay pending), keeping their hand-outs for a claim, and
   * ends its keys' parks (their delayed messages come back to the partition's next holder, not here).
   */
  const forget = (partition: number) => {
    pending.remember(
      partition,
      buffer.drop((e) => e.partition === partition),
    );
    buffer.unpark((e) => e.partition === partition);
  };

  /**
   * Why an ack, a release or a renewal (`at`: which, when not a renewal) found the lease not this reader's:
   * another reader holds it, or none does (it ran out).
   */
  const fencedBy = (holder: LeaseHolder, at?: string) => {
    if (holder === 'none')
      return at ? `the lease ran out (no holder; found at ${at})` : 'the lease ran out (no holder)';
    return at ? `another reader holds it (found at ${at})` : 'another reader holds it';
  };

  const lose = (partition: number, why: string) => {
    const state = states[partition] as PartitionState;
    if (!state.held) return;
    state.held = false;
    state.ready = false;
    state.draining = false;
    state.generation += 1;
    forget(partition);
    // Acks tried again after a refusal give up: the entries stay pending for the partition's next holder.
    refusedAcks.wake();
    context.report(new TransportError(`lost the lease of ${topic}/${group} partition ${partition}: ${why}`), 'lease');
    // A blocking read in flight may cover the partition: ended, so that it reads nothing more there.
    newEntries.rereadNow();
  };

  /** The ids of the partition's entries held here (read or claimed, not settled). */
  const heldIds = (partition: number) =>
    new Set(buffer.held().flatMap((entry) => (entry.partition === partition ? [entry.id] : [])));

  /** Entries read or claimed for a partition, into the buffer; entries for another group are acked and skipped. */
  const accept = async (partition: number, generation: number, raw: RawEntry[], counts?: Map<string, number>) => {
    const state = states[partition] as PartitionState;
    // Claimed entries may be held here already; read ones (`>`) never are.
    const held = counts ? heldIds(partition) : undefined;
    const { added, skipped, unreadable } = entriesOf(raw, { partition, generation, group, counts, held });
    for (const { id, error } of unreadable) {
      // Not a Factline message: reported, and acknowledged so that it does not hold the stream's trimming.
      context.report(
        new TransportError(`an unreadable entry ${id} in ${streams[partition]}`, { cause: error }),
        'consume',
      );
    }
    if (skipped.length > 0) await client.sendCommand(['XACK', streams[partition] as string, group, ...skipped]);
    if (!(state.held && state.generation === generation)) return;
    buffer.add(...added);
    const last = raw.at(-1);
    if (last) state.lastSeen = laterId(state.lastSeen, last.id);
  };

  /**
   * Takes over a page of what the group has pending on a partition (its earlier holders', returned or dead), at
   * most `count` entries, in id order; once none are left the partition is ready (its new entries may be read).
   * A failure is reported and the claim tried again at the next tick.
   */
  const claimSome = async (partition: number, count: number) => {
    const state = states[partition] as PartitionState;
    const generation = state.generation;
    const current = () => state.held && state.generation === generation && !stopped;
    try {
      const page = await pending.claimPage(partition, streams[partition] as string, state.claimFrom, count);
      if (page.entries.length > 0) await accept(partition, generation, page.entries, page.counts);
      if (!current()) return;
      state.claimFrom = page.next;
      if (page.next === '0-0') state.ready = true;
    } catch (error) {
      if (!current()) return;
      state.claimFailed = true;
      if (isNoGroup(error)) await context.declare(true).catch((e: unknown) => context.report(e, 'consume'));
      else context.report(error, 'lease');
    }
  };

  const newEntries = createNewEntryReader({
    context,
    streams,
    readable: () => partitionsWhere((s, p) => s.ready && !s.draining && readableFor(p) >= 1),
    readableFor,
    generationOf: (partition) => (states[partition] as PartitionState).generation,
    room: () => context.prefetch - buffer.size(),
    accept,
    claimable: () =>
      partitionsWhere((s, p) => s.held && !s.ready && !s.draining && !s.claimFailed && readableFor(p) >= 1),
    claim: claimSome,
    lastSeen: (partition) => (states[partition] as PartitionState).lastSeen,
    stopped: () => stopped,
  });

  /** Into the buffer, the pages of pending entries claimed for a partition, while it stays held under one generation. */
  const acceptClaimed = async (partition: number, pages: AsyncGenerator<ClaimedPage>) => {
    const state = states[partition] as PartitionState;
    const generation = state.generation;
    for await (const { entries, counts } of pages) {
      if (entries.length > 0) await accept(partition, generation, entries, counts);
      if (!state.held || state.generation !== generation || stopped) break;
    }
  };

  /**
   * Hands the partition's pending entries to the returned consumer and frees its lease. Each entry known here
   * goes with the hand-outs it had: one read here and never handed out reaches the next holder as never run.
   */
  const handBack = async (partition: number) => {
    const state = states[partition] as PartitionState;
    state.held = false;
    state.ready = false;
    state.draining = false;
    state.generation += 1;
    forget(partition);
    refusedAcks.wake();
    // A read in flight covering the partition would take entries after the lease is freed.
    newEntries.rereadNow();
    const counts = [...pending.handOuts(partition)].flat();
    await runScript(
      client,
      'handBack',
      [streams[partition] as string, keys.lease(topic, group, partition)],
      [group, consumer, RETURNED_CONSUMER, consumer, ...counts],
    );
  };

  const fairShare = createFairShare({
    states,
    buffer,
    handBack,
    reread: () => newEntries.rereadNow(),
    leaseMs: context.leaseMs,
  });

  const acquire = async (partition: number) => {
    const state = states[partition] as PartitionState;
    // The lease runs from when Redis set it, before its answer came back: counted from the asking, the
    // process stops handing out no later than Redis frees the partition, however late the answer.
    const asked = performance.now();
    const taken = await runScript(
      client,
      'acquire',
      [keys.lease(topic, group, partition)],
      [consumer, context.leaseMs],
    );
    if (Number(taken) !== 1) return false;
    takeOver(state, asked + context.leaseMs);
    // Its pending entries are claimed by the reading loop, as the buffer has room: a read in flight is ended.
    newEntries.rereadNow();
    return true;
  };

  /**
   * Waits for every one of a step's per-partition commands (none left running past the tick, to overlap a stop);
   * failures past the first are reported, the first thrown.
   */
  const allDone = async <T>(work: Promise<T>[]): Promise<T[]> => {
    const settled = await Promise.allSettled(work);
    const failed = settled.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as unknown] : []));
    for (const error of failed.slice(1)) context.report(error, 'lease');
    if (failed.length > 0) throw failed[0];
    return settled.map((outcome) => (outcome as PromiseFulfilledResult<T>).value);
  };

  /**
   * Renews the held leases, together (one round trip); true when one of them was too near its end to be read
   * before. A lease found with another holder, or with none (it ran out), is lost.
   */
  const renew = async () => {
    let unread = false;
    await allDone(
      partitionsWhere((s) => s.held).map(async (p) => {
        const state = states[p] as PartitionState;
        const generation = state.generation;
        const wasReadable = readableFor(p) >= 1;
        const asked = performance.now();
        const renewed = Number(
          await runScript(client, 'renew', [keys.lease(topic, group, p)], [consumer, context.leaseMs]),
        );
        // Lost meanwhile (a fenced ack): not this renewal's to change.
        if (!state.held || state.generation !== generation) return;
        if (renewed === 1) {
          state.expiresAt = asked + context.leaseMs;
          if (!wasReadable) unread = true;
        } else lose(p, fencedBy(renewed < 0 ? 'none' : 'another'));
      }),
    );
    return unread;
  };

  /**
   * Renews held leases, shares partitions with the live readers, picks up stragglers. Each step's commands for
   * the partitions go out together (one round trip, not one per partition): made one after another, a slow path
   * to Redis and many partitions would stretch a tick past the leases it renews. A stopping reader only renews:
   * its leases hold while the deliveries out are settled (run out meanwhile, another reader would take a
   * partition and run its entries again while a handler here still has them, and that handler's ack would be
   * fenced off).
   */
  const tick = async () => {
    // A stop that handed the partitions back (or gave up on it): their leases are renewed no more.
    if (ticks.ended()) return;
    if (stopped) {
      await renew();
      return;
    }
    // Registered by Redis's clock: a reader whose clock runs ahead would otherwise take the others' for ended.
    const live = await runScript(client, 'register', [keys.readers(topic, group)], [consumer, context.leaseMs]);
    const share = Math.ceil(context.partitions / Math.max(1, Number(live)));
    // A partition whose lease was near its end here was left out of the reads: read again at once.
    if (await renew()) newEntries.rereadNow();
    const retried = partitionsWhere((s) => s.held && s.claimFailed);
    for (const p of retried) (states[p] as PartitionState).claimFailed = false;
    if (retried.length > 0) newEntries.rereadNow();
    let held = await fairShare.giveUp(share);
    // Free partitions are asked for in rounds of as many as the share lacks, from a random place.
    const offset = Math.floor(Math.random() * states.length);
    const candidates = Array.from({ length: states.length }, (_, i) => (offset + i) % states.length).filter(
      (p) => !(states[p] as PartitionState).held,
    );
    while (held < share && candidates.length > 0 && !stopped) {
      const round = candidates.splice(0, share - held);
      held += (await allDone(round.map(acquire))).filter(Boolean).length;
    }
    // Entries a reader read just before it lost its lease, left pending after this holder claimed: picked up late.
    // Those held here are left alone (a claim would count a delivery of an entry that may never have gone out).
    await allDone(
      partitionsWhere((s) => s.ready && !s.draining).map((p) =>
        acceptClaimed(
          p,
          pending.sweep(p, streams[p] as string, context.leaseMs * 2, () => heldIds(p)),
        ),
      ),
    );
    if (Date.now() - lastTrim >= context.trimIntervalMs) {
      lastTrim = Date.now();
      await trim();
    }
  };

  /** Trims the streams of the partitions held; a failure is reported and tried again at the next trim. */
  const trim = () =>
    allDone(
      partitionsWhere((s) => s.held).map((p) =>
        runScript(client, 'trim', [streams[p] as string], [context.consumerIdleMs]).catch((error: unknown) =>
          context.report(error, 'trim'),
        ),
      ),
    );

  /** The rounds (`tick`), every `tickEvery`; the stop ends them once it hands the partitions back. */
  const ticks = createLeaseTicks({
    every: tickEvery,
    silentAfterMs: context.leaseMs,
    round: tick,
    // A renewal unanswered for a lease time: the partitions' work stopped (their leases ran out here), told once.
    onSilent: () => {
      if (stopped) return;
      context.report(
        new TransportError(
          `Redis has not answered the lease renewal of ${topic}/${group} for ${context.leaseMs} ms: its partitions are not handed out until it does (a connection silent for ${SILENCE_MS} ms with commands waiting is made again)`,
        ),
        'lease',
      );
    },
    onFailed: (error) => {
      context.report(error, 'lease');
      // Leases not renewed in time end here, whatever the server says later.
      for (let p = 0; p < states.length; p++) {
        const state = states[p] as PartitionState;
        if (state.held && performance.now() >= state.expiresAt) lose(p, 'not renewed in time');
      }
    },
  });

  let started: Promise<void> | undefined;

  return {
    buffer,
    /** Resolves once the first share of partitions is held (or that attempt failed and was reported). */
    start(): Promise<void> {
      // A subscription closed before its group was declared: stopped before it started, it takes nothing.
      if (stopped) return Promise.resolve();
      started ??= (async () => {
        await ticks.start((error) => context.report(error, 'lease'));
        reading = newEntries.run();
      })();
      return started;
    },
    /**
     * The connection dropped: what the server holds is unknown until it answers again (it may have
     * restarted and lost the leases to another reader), so every partition's work stops at once; the
     * next tick takes the leases again.
     */
    interrupt() {
      for (let p = 0; p < states.length; p++) lose(p, 'the connection to Redis dropped');
    },
    /** Partitions this reader holds now. */
    held: () => partitionsWhere((s) => s.held),
    /**
     * Stops reading and taking partitions; renews the leases held until the deliveries out are settled (up to
     * 5 s), then hands back what is pending and frees the leases.
     */
    async stop() {
      if (stopped) return;
      // The lease timer runs on, renewing only (tick), until the hand-back.
      stopped = true;
      // Waiting receivers get nothing more; deliveries out may still be settled. Refused acks are not tried again.
      buffer.close();
      refusedAcks.wake();
      await leaveGroup({
        context,
        ticks,
        started,
        reading,
        dropConnection: () => newEntries.dropConnection(),
        settled: (ms) => buffer.settled(ms),
        // All together (one round trip, not one per partition: the stop's bound holds on a slow path too).
        handBackHeld: () =>
          Promise.all(
            partitionsWhere((s) => s.held).map((p) =>
              handBack(p).catch((error: unknown) => context.report(error, 'lease')),
            ),
          ),
      });
    },
  };
}

export type GroupReader = ReturnType<typeof createGroupReader>;
