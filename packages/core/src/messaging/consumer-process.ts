import { isStoreClosedError, NonRetryableError } from '../errors/index.ts';
import { noteSettle, traceProcess } from '../tracing/messaging-spans.ts';
import type { ProducerSpanRelation } from '../tracing/span-relation.ts';
import { handlerCall } from './consumer-context.ts';
import { deadLetterStep } from './consumer-dead-letters.ts';
import type { InboxStep, LaneSlot } from './consumer-inbox.ts';
import type { ConsumerErrorStage } from './consumer-options.ts';
import type { DeadLetterStore, RetryPolicy } from './consumer-ports.ts';
import { retryStep } from './consumer-retry.ts';
import { StepFailure, stepFailure } from './consumer-step.ts';
import type { Message } from './message.ts';
import type { Delivery } from './transport.ts';

const settled = () => true;

/** The counts the pipeline keeps (a part of `ConsumerStats`). */
export interface ProcessCounts {
  handled: number;
  duplicates: number;
  retries: number;
  deadLettered: number;
  discarded: number;
}

/** What one consumer's pipeline works with, resolved from its options. */
export interface ProcessSettings<Tx> {
  name: string;
  topic: string;
  handler: (message: Message, tx: Tx) => unknown;
  policy: RetryPolicy;
  inbox: InboxStep<Tx>;
  deadLetterStore: () => Promise<DeadLetterStore>;
  holdOnDelay: boolean;
  /** A stop during a retry's delay keeps the rest of the delay (the transport's `delayedReleaseHoldsKey`). */
  keepDelayOnStop: boolean;
  visibility: number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  now: () => number;
  /** The consumer's stop signal (a new one per start). */
  signal: () => AbortSignal;
  report: (error: unknown, stage: ConsumerErrorStage, message?: Message) => void;
  /** The transport was found closed: the consumer stops fetching and working. */
  fail: () => void;
  stats: ProcessCounts;
  /** The transport's `messaging.system`, for the process spans. */
  system: string;
  /** Process spans link to the producer's span (`'link'`), or are its children (`'parent'`). */
  producerSpan: ProducerSpanRelation;
  /** A delivery handed out more often than this is dead-lettered without running the handler; none: no bound. */
  maxDeliveries: number | undefined;
}

/**
 * One delivery through steps 1–4 of the pipeline (step 5 is the key lane it
 * runs in), then its settle: the handler in the message's context
 * (`consumer-context.ts`) through the inbox (`consumer-inbox.ts`), under the
 * retry policy (`consumer-retry.ts`), which gives up to the dead-letter queue
 * (`consumer-dead-letters.ts`). Resolves true once the delivery is settled
 * (acknowledged, or given back by the policy), false when a step failed (the
 * inbox, the dead-letter store, a settle): the failure is reported and the
 * message given back to come again later.
 */
export function createProcessor<Tx>(
  settings: ProcessSettings<Tx>,
): (delivery: Delivery, slot?: LaneSlot) => Promise<boolean> {
  const { name, topic, handler, inbox, now, report, fail, stats, maxDeliveries } = settings;
  const deadLetter = deadLetterStep({ name, topic, store: settings.deadLetterStore, now, stats });
  const withRetries = retryStep({ ...settings, deadLetter });

  /** One try of the handler through the inbox. */
  const attempt = (delivery: Delivery, slot: LaneSlot | undefined) =>
    inbox.apply(delivery, handlerCall(name, handler, delivery.message), slot);

  const process = async (delivery: Delivery, slot: LaneSlot | undefined) => {
    const message = delivery.message;
    let outcome: 'applied' | 'duplicate' | 'settled' = 'duplicate';
    if (!(inbox.marksApart && (await inbox.seen(message)))) {
      if (maxDeliveries !== undefined && delivery.deliveryCount > maxDeliveries) {
        // Handed out again and again without a settle: every consumer that had it crashed or hung on it.
        const error = new NonRetryableError(
          `delivered ${delivery.deliveryCount} times without being settled (maxDeliveries ${maxDeliveries}): the consumers that had it crashed or hung on it`,
        );
        report(error, 'handler', message);
        await deadLetter(delivery, {
          error,
          reason: 'maxDeliveries reached',
          attempts: delivery.deliveryCount,
          firstFailureAt: now(),
        });
        return;
      }
      outcome = await withRetries(delivery, attempt, slot);
      if (outcome === 'settled') return;
      if (outcome === 'applied' && inbox.marksApart) await inbox.record(message);
    }
    // Acknowledged, then counted: a count read after it is never ahead of the transport.
    try {
      await delivery.ack();
    } catch (error) {
      throw stepFailure('ack', error);
    }
    if (outcome === 'applied') {
      stats.handled += 1;
      noteSettle('ack');
    } else {
      stats.duplicates += 1;
      noteSettle('duplicate');
    }
  };

  /** A step failed: report it and leave the message to come back later (unless the transport is gone). */
  const failed = async (failure: unknown, delivery: Delivery) => {
    const { stage, cause } = failure instanceof StepFailure ? failure : new StepFailure('handler', failure);
    report(cause, stage, delivery.message);
    if (isStoreClosedError(cause)) return fail();
    if (stage === 'release') return;
    await delivery.release(1000).catch((error: unknown) => {
      report(error, 'release', delivery.message);
      if (isStoreClosedError(error)) fail();
    });
  };

  const span = { system: settings.system, topic, group: name, producerSpan: settings.producerSpan };
  // Settled in a reaction rather than an async wrapper: one promise less per delivery.
  return (delivery, slot) =>
    traceProcess(span, delivery.message, delivery.deliveryCount, () => process(delivery, slot)).then(
      settled,
      async (failure: unknown) => {
        await failed(failure, delivery);
        return false;
      },
    );
}
