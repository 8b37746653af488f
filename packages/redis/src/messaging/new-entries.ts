import { destroyClient, type RedisClient, reconnectDelay } from '../connection.ts';
import type { ReaderContext } from './reader-context.ts';
import { isNoGroup, parseStreams, type RawEntry, readNewCommand, readOwnPendingCommand } from './stream-replies.ts';

/** What the read of new entries asks of its group reader. */
export interface NewEntrySource {
  context: ReaderContext;
  /** Each partition's stream. */
  streams: readonly string[];
  /** The partitions whose new entries may be read now (held, claimed, not draining, their leases not near their ends). */
  readable(): number[];
  /** How long, in ms, new entries of a readable partition may still be read: a blocking read covering it waits no longer. */
  readableFor(partition: number): number;
  /** The generation of a partition's lease: entries read under an older one are not handed out. */
  generationOf(partition: number): number;
  /** How many more entries the buffer takes (`prefetch` less what it holds). */
  room(): number;
  /** Takes the entries read from a partition's stream under `generation`. */
  accept(partition: number, generation: number, entries: RawEntry[]): Promise<void>;
  /**
   * The partitions held whose earlier holders' pending entries are still to be claimed (their new entries are
   * read once those are all taken), their leases not near their ends.
   */
  claimable(): number[];
  /** Claims up to `count` more of a partition's pending entries into the buffer; tells its own failures. */
  claim(partition: number, count: number): Promise<void>;
  /** The last entry id read or claimed for a partition under its current generation (`0-0`: none). */
  lastSeen(partition: number): string;
  stopped(): boolean;
}

/**
 * The loop filling a group reader's buffer, never past its room: it claims
 * the pending entries of the partitions taken over, a page at a time (one
 * partition's in turn), and reads the group's new entries (`XREADGROUP … >`)
 * on a connection of its own, blocking up to `blockMs` (less where a
 * partition's lease ends sooner; not at all while claims wait), for the
 * partitions the reader may read. It waits while there is nothing to claim
 * or read, or no room; `wake` ends that wait, `rereadNow` also ends a
 * blocking read in flight (a partition became readable or was taken over:
 * the read under way does not cover it). A failed read is reported and tried
 * again after a backoff, declaring the group again where the server lost it.
 * A read sent that got no reply (its connection dropped, or taking what it
 * brought failed) may have moved entries into this consumer's pending list
 * all the same: before the new entries of its partitions are read again, this
 * consumer's own pending entries after the last one seen there are read
 * (`XREADGROUP … <id>`), so that they come in their order, ahead of later ones.
 */
export function createNewEntryReader(source: NewEntrySource) {
  const { context, streams } = source;
  const { client, group, consumer } = context;
  let blocking: RedisClient | undefined;
  let blockingId = '';
  /** The blocking connection's id while an `XREADGROUP` waits on it, to end that wait early. */
  let blockedId: string | undefined;
  let kick: (() => void) | undefined;
  /** Where the next read starts among the readable partitions when there is room for fewer entries than them. */
  let turn = 0;
  /** Which of the partitions taken over has the next claim. */
  let claimTurn = 0;
  /** Reads sent so far: an unblock retried is for the read it was asked for, never the next one. */
  let reads = 0;
  /** The read an unblock is on its way for, or -1. */
  let unblocking = -1;
  /** Partitions a read without a reply covered, with their generation then: their own pending entries come first. */
  const unanswered = new Map<number, number>();

  /**
   * Reads what the unanswered reads may have left in this consumer's pending list, for the partitions still held
   * under the same generation; a partition is done once a read of it brings fewer entries than it asked for.
   */
  const readUnanswered = async () => {
    const ready = new Set(source.readable());
    const partitions: number[] = [];
    for (const [partition, generation] of unanswered) {
      // Taken over since (or no longer held): its new holder claims what is pending.
      if (source.generationOf(partition) !== generation) unanswered.delete(partition);
      else if (ready.has(partition)) partitions.push(partition);
    }
    const room = source.room();
    if (partitions.length === 0 || room <= 0) return;
    const count = Math.max(1, Math.floor(room / partitions.length));
    const generations = partitions.map(source.generationOf);
    const keys = partitions.map((p) => streams[p] as string);
    const reply = await client.sendCommand(
      readOwnPendingCommand(group, consumer, count, keys, partitions.map(source.lastSeen)),
    );
    const read = parseStreams(reply);
    for (const [i, partition] of partitions.entries()) {
      const entries = read.get(keys[i] as string) ?? [];
      if (entries.length > 0) await source.accept(partition, generations[i] as number, entries);
      if (entries.length < count) unanswered.delete(partition);
    }
  };

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (kick === done) kick = undefined;
        resolve();
      }
      kick = done;
    });

  const run = async () => {
    let failures = 0;
    while (!source.stopped()) {
      const claiming = source.claimable();
      if ((source.readable().length === 0 && claiming.length === 0) || source.room() <= 0) {
        await pause(context.blockMs);
        continue;
      }
      if (claiming.length > 0) {
        await source.claim(claiming[claimTurn++ % claiming.length] as number, source.room());
        if (source.stopped() || source.readable().length === 0 || source.room() <= 0) continue;
      }
      /** The partitions of a read sent, until its reply is taken in. */
      let sent: number[] = [];
      let sentGenerations: number[] = [];
      try {
        if (unanswered.size > 0) await readUnanswered();
        if (!blocking) {
          const opened = await context.openBlocking();
          // Stopped while it connected: the stop had no connection to close.
          if (source.stopped()) {
            destroyClient(opened);
            break;
          }
          blocking = opened;
        }
        // Asked again after a failure: a reconnected connection has a new id.
        if (blockingId === '') blockingId = String(await blocking.sendCommand(['CLIENT', 'ID']));
        // Worked out once connected (that can take a reconnection's time): a partition lost meanwhile is not read.
        // A partition's new entries wait until what went unseen there is in.
        let ready = source.readable().filter((p) => !unanswered.has(p));
        const room = source.room();
        if (ready.length === 0 || room <= 0) continue;
        // COUNT is per stream: the room is shared out, so one read never brings more than `prefetch` in all.
        let count = Math.floor(room / ready.length);
        if (count === 0) {
          const from = turn++ % ready.length;
          ready = [...ready.slice(from), ...ready.slice(0, from)].slice(0, room);
          count = 1;
        }
        const generations = ready.map(source.generationOf);
        // Never 0 (that blocks for ever): a readable partition has at least 1 ms left. None while claims wait.
        const blockMs =
          source.claimable().length > 0
            ? undefined
            : Math.max(1, Math.min(context.blockMs, ...ready.map(source.readableFor)));
        blockedId = blockingId;
        reads += 1;
        sent = ready;
        sentGenerations = generations;
        const reply = await blocking
          .sendCommand(
            readNewCommand(
              group,
              consumer,
              count,
              blockMs,
              ready.map((p) => streams[p] as string),
            ),
          )
          .finally(() => {
            blockedId = undefined;
          });
        failures = 0;
        for (const [stream, entries] of parseStreams(reply)) {
          const at = ready.findIndex((p) => streams[p] === stream);
          if (at >= 0) await source.accept(ready[at] as number, generations[at] as number, entries);
        }
        sent = [];
      } catch (error) {
        if (source.stopped()) break;
        for (const [i, partition] of sent.entries()) unanswered.set(partition, sentGenerations[i] as number);
        blockingId = '';
        failures += 1;
        context.report(error, 'consume');
        if (isNoGroup(error)) await context.declare(true).catch((e: unknown) => context.report(e, 'consume'));
        if (source.stopped()) break;
        // A turn of the event loop and a backoff: the client reconnects meanwhile.
        await pause(reconnectDelay(failures, context.reconnectMinMs, context.reconnectMaxMs));
      }
    }
  };

  const wake = () => kick?.();

  return {
    /** Reads until the source is stopped and the connection dropped (`dropConnection`). */
    run,
    /** Ends the wait for room or for a readable partition. */
    wake,
    /**
     * A partition became readable: the blocking read in flight does not cover it, so it is ended at once
     * (`CLIENT UNBLOCK`, answered as a timeout) and the next read includes it, instead of after `blockMs`.
     */
    rereadNow() {
      wake();
      const read = reads;
      // One unblock at a time per read: a connection lost loses every partition at once.
      if (blockedId === undefined || unblocking === read) return;
      unblocking = read;
      // The unblock travels on another connection and can reach Redis before the read it is for: tried again a
      // few times, 5 ms apart, while that read is still unanswered.
      const unblock = (tries: number) => {
        if (blockedId === undefined || reads !== read) {
          unblocking = -1;
          return;
        }
        client.sendCommand(['CLIENT', 'UNBLOCK', blockedId]).then(
          (done) => {
            if (Number(done) === 0 && tries > 1) setTimeout(() => unblock(tries - 1), 5).unref?.();
            else unblocking = -1;
          },
          () => {
            unblocking = -1;
          },
        );
      };
      unblock(3);
    },
    /** Closes the blocking connection now, whatever waits on it; the loop then ends once stopped. */
    dropConnection() {
      const open = blocking;
      blocking = undefined;
      destroyClient(open);
      wake();
    },
  };
}
