import { TransportError } from '@factline/core';
import { createDeliveryBuffer, messageFromJson, settledWithin } from '@factline/core/adapter';
import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { isConsumerMissing } from '../topology.ts';
import { deadLetterAtMaxDeliver } from './dead-letter.ts';
import { createNakedMessages } from './naked.ts';
import { createPartitionGate, type PartitionGate } from './partition-gate.ts';
import { DUE_HEADER } from './publish.ts';
import type { Entry, Held, ReaderContext } from './reader-context.ts';

/** Decodes message bodies (one for every reader: `decode` keeps no state between calls without `stream`). */
const utf8 = new TextDecoder();

/** How long one pull waits at the server for messages (the least the client allows). */
const PULL_EXPIRES_MS = 1000;
/** How long past its expiry a pull may stay open before the reader stops it and pulls again. */
const PULL_GRACE_MS = 4000;

/** A release or a due time this close is held in the process (the message stays unacknowledged), not naked. */
export const holdBelowMs = 100;

/**
 * One process's reader of one group: a pull loop per partition it holds
 * (`fetch` with a short expiry, again and again: a pull lost with a
 * connection is replaced within the expiry, and the partition is gated
 * afterwards until nothing it lost is pending elsewhere), and the buffer its
 * subscriptions receive from. Held messages are kept alive with `working()`.
 * Which partitions it holds is told by `gain` and `lose` (the claims).
 */
export function createGroupReader(context: ReaderContext) {
  const { names, topic, group } = context;
  const held = new Map<number, Held>();
  /** Messages naked with a delay, until they come back. */
  const naked = createNakedMessages();
  let stopped = false;
  /** Stopping: no more pulls (what they would bring would only be given back, one more delivery each). */
  let pullsEnded = false;
  let nextEpoch = 1;
  const wakers = new Set<() => void>();
  const ownToken = names.groupToken(group);
  /**
   * Whether a message on `subject` is this group's: one published (`….<p>.all`: every group's) or redriven to
   * this group (`….<p>.to.<group>`). Told by the form, not a suffix: a group may be named `all`, and its redrive
   * subject then ends `.to.all`.
   */
  const forThisGroup = (subject: string) => {
    const last = subject.lastIndexOf('.');
    const before = subject.lastIndexOf('.', last - 1);
    const target = subject.slice(before + 1, last) === 'to' ? subject.slice(last + 1) : undefined;
    return target === undefined ? subject.endsWith('.all') : target === ownToken;
  };

  /** Why an ack cannot reach the server: the group gets the message again. */
  const notAcked = (entry: Entry, why: string) =>
    new TransportError(
      `the ack of message ${entry.message.id} in ${topic}/${group} cannot reach the server (${why}): it will be delivered again`,
    );
  const holds = (entry: Entry) => !stopped && held.get(entry.partition)?.epoch === entry.epoch;
  /** Holdings ended because their consumer (or the stream) was deleted at the server: what they brought is gone. */
  const deletedEpochs = new Set<number>();

  const buffer = createDeliveryBuffer<Entry>(
    {
      holds,
      ack(entry) {
        // Resolving would say the group never sees it again; it will, so the ack is refused (retryable).
        if (deletedEpochs.has(entry.epoch)) {
          throw new TransportError(
            `the ack of message ${entry.message.id} in ${topic}/${group} cannot reach the server: its consumer (or the stream) was deleted there, and it is not delivered again`,
          );
        }
        if (!holds(entry)) throw notAcked(entry, 'this process no longer holds its partition');
        if (!context.connected()) throw notAcked(entry, 'the connection to the server is down');
        entry.raw.ack();
        for (const wake of wakers) wake();
      },
      async delay(entry, dueAt) {
        if (!holds(entry)) return true;
        const { seq, count, partition, epoch } = entry;
        try {
          entry.raw.nak(Math.max(1, dueAt - Date.now()));
        } catch (error) {
          // The client refuses to send (its connection closed or draining): held here until due instead.
          context.report(
            new TransportError(
              `the delayed release of message ${entry.message.id} in ${topic}/${group} could not be sent to the server: it is held in this process until due`,
              { cause: error },
            ),
            'delay',
          );
          return false;
        }
        naked.add({ seq, at: entry.raw.info.timestampNanos, count, partition, epoch });
        return true;
      },
    },
    { parkGraceMs: 5000, holdBelowMs, onDelayError: (error) => context.report(error, 'delay') },
  );

  /**
   * Sends `signal` (a nak, `working()`) to each message `use` passes to `send`, and tells (stage `consume`)
   * once per round how many the client refused: it throws where its connection is closed (it closes one itself,
   * credentials refused at a reconnection) or draining. Those come back to the group at their ack wait.
   */
  const sendEach = (what: string, use: (send: (raw: JsMsg) => void) => void, signal: (raw: JsMsg) => void) => {
    let refused = 0;
    let first: unknown;
    use((raw) => {
      try {
        signal(raw);
      } catch (error) {
        refused += 1;
        first ??= error;
      }
    });
    if (refused > 0) {
      context.report(
        new TransportError(
          `${what}: ${refused} message(s) of ${topic}/${group} could not be sent to the server, they come back at their ack wait`,
          { cause: first },
        ),
        'consume',
      );
    }
  };

  /**
   * Brought by a pull still open after its partition was given up (or the reader began to stop), or of a
   * consumer made again: given back once that pull ended. Naked while it is open, the server would deliver each
   * to it again at once, and again, every delivery counted toward `max_deliver`.
   */
  const goingBack = new Set<JsMsg>();

  /** Keeps every held message from coming back at `ack_wait`. */
  const keepAlive = setInterval(
    () =>
      sendEach(
        'the keep-alive (working)',
        (send) => {
          for (const entry of buffer.held()) if (holds(entry)) send(entry.raw);
          for (const part of held.values()) part.gate.working(send);
          for (const raw of goingBack) send(raw);
        },
        (raw) => raw.working(),
      ),
    Math.max(300, Math.floor(context.ackWaitMs / 3)),
  );
  keepAlive.unref?.();

  /** Dead-letterings on their way to the store: `stop` waits for them (bounded). */
  const deadLettering = new Set<Promise<void>>();
  const maxDeliverSettings = {
    store: context.deadLetters,
    topic,
    group,
    report: (error: unknown) => context.report(error, 'dead-letters'),
    stopped: () => stopped,
  };

  /** A message pulled for `partition` under `epoch`, past the gate. */
  const accept = (raw: JsMsg, partition: number, epoch: number) => {
    if (!forThisGroup(raw.subject)) {
      // A redelivery to another group of the topic.
      raw.ack();
      return;
    }
    // Parsed from the reply subject once; `seq` and `info` read it again on every access otherwise.
    const { streamSequence: seq, deliveryCount, timestampNanos } = raw.info;
    // The same sequence stored at another time: a message of a stream made again (its sequences start over).
    const known = buffer.find((e) => e.seq === seq && e.raw.info.timestampNanos === timestampNanos);
    if (known) {
      // The server gave it again (an ack wait passed): the newer delivery is the one to settle.
      known.raw = raw;
      return;
    }
    let message: Entry['message'];
    try {
      message = messageFromJson(utf8.decode(raw.data));
    } catch (error) {
      context.report(new TransportError(`an unreadable message in ${topic}/${group}`, { cause: error }), 'consume');
      raw.term('unreadable');
      return;
    }
    const due = Number(raw.headers?.get(DUE_HEADER) ?? 0) || 0;
    const dueAt = Math.max(due, message.deliverAt?.getTime() ?? 0);
    const count = Math.max(deliveryCount - 1, naked.back(seq, timestampNanos) ?? 0);
    const entry: Entry = {
      message,
      partition,
      seq,
      visibleAt: dueAt,
      count,
      lease: 0,
      holder: undefined,
      raw,
      epoch,
    };
    if (deliveryCount >= context.maxDeliver) {
      const recording = deadLetterAtMaxDeliver(raw, entry.message, maxDeliverSettings);
      deadLettering.add(recording);
      void recording.finally(() => deadLettering.delete(recording));
      return;
    }
    if (dueAt - Date.now() >= holdBelowMs) buffer.defer(entry, dueAt);
    else buffer.add(entry);
  };

  /** Waits until the partition has room for more unacknowledged messages, or `ms` passed. */
  const roomOrTimeout = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        wakers.delete(done);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, ms);
      wakers.add(done);
    });

  const pullLoop = async (partition: number, part: Held) => {
    let consumer: Consumer | undefined;
    let failures = 0;
    /** The consumer was found missing (deleted by hand, a server that lost its state): created again. */
    let missing = false;
    const current = () => !stopped && !pullsEnded && held.get(partition) === part;
    while (current()) {
      try {
        if (part.regate) {
          part.regate = false;
          consumer = undefined;
        }
        if (!consumer) {
          await context.ensureConsumer(partition, missing);
          missing = false;
          consumer = await context.js().consumers.get(names.stream, names.consumer(topic, group, partition));
          await part.gate.close();
        }
        await part.gate.check();
        // While gated, the messages still pending elsewhere must be able to come (they come first, once
        // their ack wait ends), however full the partition is of ones waiting behind them.
        // Behind a closed gate, no more than `prefetch` wait: past that, one message a second, so that the ones
        // pending elsewhere still come (a pull brings redeliveries first) while new ones no longer pile up.
        const gatedFull = !part.gate.isOpen() && part.gate.size() >= context.prefetch;
        if (gatedFull) {
          const since = Date.now() - part.fullPullAt;
          if (since < 1000) {
            await roomOrTimeout(1000 - since);
            continue;
          }
          part.fullPullAt = Date.now();
        }
        const room = part.gate.isOpen()
          ? context.prefetch - buffer.heldIn(partition) - part.gate.size()
          : gatedFull
            ? 1
            : Math.max(1, Math.min(part.gate.missing(), context.prefetch - part.gate.size()));
        // Pull in halves of the prefetch, not one message per ack: each pull is a round trip.
        if (
          room <= 0 ||
          (part.gate.isOpen() && room < Math.ceil(context.prefetch / 2) && buffer.heldIn(partition) > 0)
        ) {
          await roomOrTimeout(1000);
          continue;
        }
        // The requests above can take long (across a reconnection): a partition lost meanwhile is pulled no more;
        // one to gate again (a reconnection, the stream found deleted) gets its consumer again first.
        if (!current()) break;
        if (part.regate) continue;
        const batch = await consumer.fetch({ max_messages: room, expires: PULL_EXPIRES_MS });
        part.batch = batch;
        // The server ends a pull at its expiry and the client stops one whose heartbeats stop; a pull still
        // open well after that is stopped here, told, and the partition gated again (it may have lost messages).
        let overdue = false;
        /** The consumer was found made again during this pull: what it brings goes back, to come behind the gate. */
        let renewed = false;
        /** What this pull brings to be given back when it ends (`goingBack`). */
        const late: JsMsg[] = [];
        const watch = setTimeout(() => {
          overdue = true;
          batch.stop();
        }, PULL_EXPIRES_MS + PULL_GRACE_MS);
        try {
          for await (const raw of batch) {
            if (part.regate && !renewed) break;
            const delivered = raw.info.deliverySequence;
            if (!renewed && current() && delivered <= part.delivered) {
              // Its delivery numbering started over: the consumer (and the stream, maybe) was deleted and made
              // again unseen. What was held of it is forgotten before an ack of it settles a new message.
              renewed = true;
              batch.stop();
              context.report(
                new TransportError(
                  `the consumer of ${topic}/${group} partition ${partition} was made again at the server (its delivery sequence went back from ${part.delivered} to ${delivered}): what this process held of it is dropped`,
                ),
                'consume',
              );
              startOver(partition, part);
            }
            part.delivered = Math.max(part.delivered, delivered);
            // Given up meanwhile (or stopping), or the consumer made again: what the pull brings goes back once
            // it ended (`goingBack`).
            if (!current() || renewed) {
              late.push(raw);
              goingBack.add(raw);
            } else part.gate.offer(raw);
          }
        } finally {
          clearTimeout(watch);
          part.batch = undefined;
          if (late.length > 0) {
            for (const raw of late) goingBack.delete(raw);
            sendEach(
              `the give-back (nak) of what a pull of partition ${partition} brought after it was given up`,
              (send) => {
                for (const raw of late) send(raw);
              },
              (raw) => raw.nak(),
            );
          }
        }
        if (overdue && current()) {
          throw new TransportError(
            `the pull did not end within ${PULL_EXPIRES_MS + PULL_GRACE_MS} ms (its expiry is ${PULL_EXPIRES_MS} ms): stopped`,
          );
        }
        failures = 0;
      } catch (error) {
        if (!current()) break;
        failures += 1;
        context.report(
          new TransportError(`pulling ${topic}/${group} partition ${partition} failed`, { cause: error }),
          'consume',
        );
        // Pulled messages may have been lost on the way: gate the partition again once the consumer is back.
        consumer = undefined;
        if (isConsumerMissing(error)) {
          missing = true;
          startOver(partition, part);
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** Math.min(failures, 5))));
      }
    }
  };

  /**
   * Forgets what the partition's holding `epoch` brought, given back (nak) unless it is of a consumer that is
   * gone (`nak: false`): the server takes a nak by stream sequence, and a stream made again has other messages
   * at those numbers.
   */
  const giveBack = (partition: number, epoch: number, gate: PartitionGate, nak = true) => {
    const mine = (e: Entry) => e.partition === partition && e.epoch === epoch;
    const entries = buffer.held().filter(mine);
    naked.forget(partition, epoch);
    if (nak) {
      sendEach(
        `the give-back (nak) of partition ${partition}`,
        (send) => {
          for (const entry of entries) send(entry.raw);
          gate.giveBack(send);
        },
        (raw) => raw.nak(),
      );
    } else gate.giveBack(false);
    buffer.drop(mine);
    buffer.unpark(mine);
  };

  /**
   * The partition's consumer (or its stream) was deleted at the server: what it delivered can be acknowledged
   * no more (nor comes back), and a stream made again numbers its messages from 1 again. It is forgotten (not
   * naked) and the partition goes on under a new holding (its messages' acks are refused, retryable), behind
   * its gate once the consumer is got again.
   */
  const startOver = (partition: number, part: Held) => {
    const epoch = part.epoch;
    deletedEpochs.add(epoch);
    part.epoch = nextEpoch++;
    part.delivered = 0;
    part.regate = true;
    giveBack(partition, epoch, part.gate, false);
  };

  const lose = async (partition: number) => {
    const part = held.get(partition);
    if (!part) return;
    held.delete(partition);
    for (const wake of wakers) wake();
    // The pull under way runs to its end (a pull cannot be cancelled at the server: a message naked
    // before it ended would be delivered to it, lost until its ack wait); what it brings is naked.
    await part.loop;
    // Only what this holding brought: the partition may be held again meanwhile (a claim renewal answered
    // late, then found still this process's), and the new holding's messages stay with it.
    giveBack(partition, part.epoch, part.gate);
  };

  return {
    buffer,
    /** This process holds `partition` now: pull it (behind the gate). */
    gain(partition: number) {
      if (stopped || pullsEnded || held.has(partition)) return;
      const part: Held = {
        epoch: nextEpoch++,
        gate: createPartitionGate({
          ackPending: async () => (await context.pending(partition)).ackPending,
          deliveredSeq: async () => (await context.pending(partition)).deliveredSeq,
          ours: function* () {
            for (const entry of buffer.held()) if (entry.partition === partition) yield entry.seq;
            yield* naked.in(partition);
          },
          // Under the holding current when it passes the gate (a consumer made again starts a new one).
          pass: (raw) => accept(raw, partition, part.epoch),
        }),
        loop: Promise.resolve(),
        batch: undefined,
        regate: false,
        fullPullAt: 0,
        delivered: 0,
      };
      held.set(partition, part);
      part.loop = pullLoop(partition, part);
    },
    /** `partition` is no longer this process's: stop pulling it; give back what it holds of it (nak). */
    lose,
    /** Nothing of `partition` is in a handler's hands: it can be given up now. */
    idle: (partition: number) => !buffer.busy(partition),
    partitions: () => [...held.keys()],
    /** After a reconnect: pulls may have been lost on the way; every partition is gated again. */
    regate() {
      for (const part of held.values()) {
        part.regate = true;
        part.batch?.stop();
      }
    },
    /**
     * The stream was deleted at the server (found missing, or told): every partition starts over (what was held
     * of it is dropped, its acks refused), and is gated again once its consumer is back.
     */
    streamGone() {
      for (const [partition, part] of held) {
        startOver(partition, part);
        part.batch?.stop();
      }
      // A loop waiting for room (its prefetch held) gets its consumer again now.
      for (const wake of wakers) wake();
    },
    /**
     * The reader is stopping: no pull is sent any more (one under way runs to its end, what it brings naked), so
     * that the wait for the handlers (`settled`) does not refill the prefetch only to give it back at `stop`: a
     * give-back counts one delivery at the server for every message it naks.
     */
    endPulls() {
      pullsEnded = true;
      for (const wake of wakers) wake();
    },
    /** Waits (up to 5 s) for the releases on their way back to the server. */
    settled: () => buffer.settled(5000),
    /** Stops pulling; what is held and unacknowledged goes back to the server (nak), in order. */
    async stop() {
      const parts = [...held.keys()];
      await Promise.all(parts.map((p) => lose(p)));
      stopped = true;
      // A store failing for good gives up at its next try (told); never longer than this.
      await settledWithin(Promise.allSettled([...deadLettering]), 6000);
      clearInterval(keepAlive);
      buffer.close();
    },
  };
}

export type GroupReader = ReturnType<typeof createGroupReader>;
