import { isFactlineError, isStoreClosedError, ValidationError } from '../errors/index.ts';
import { deadLetterRecord } from './consumer-dead-letters.ts';
import { type ConsumerErrorStage, retryDecisionProblem } from './consumer-options.ts';
import {
  type DeadLetterStore,
  type Inbox,
  isPromiseLike,
  type RetryDecision,
  type RetryPolicy,
} from './consumer-ports.ts';
import { runInMessageContext } from './context.ts';
import type { Message } from './message.ts';
import type { Delivery } from './transport.ts';

/** A failure of one step of the pipeline, tagged with the step. */
export class StepFailure {
  constructor(
    readonly stage: ConsumerErrorStage,
    readonly cause: unknown,
  ) {}
}

const step = async <T>(stage: ConsumerErrorStage, work: () => Promise<T>): Promise<T> => {
  try {
    return await work();
  } catch (error) {
    throw error instanceof StepFailure ? error : new StepFailure(stage, error);
  }
};

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
  inbox: Inbox<Tx>;
  deadLetterStore: () => Promise<DeadLetterStore>;
  holdOnDelay: boolean;
  visibility: number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  now: () => number;
  /** The consumer's stop signal (a new one per start). */
  signal: () => AbortSignal;
  report: (error: unknown, stage: ConsumerErrorStage, message?: Message) => void;
  stats: ProcessCounts;
}

/**
 * Steps 2–4 and 6 of the pipeline for one delivery (step 5 is the key lane it
 * runs in; step 1 wraps the handler): the handler through the inbox, the
 * retry policy, the dead-letter queue, the settle. A failure of the inbox,
 * the dead-letter store or a settle rejects with a `StepFailure` naming the
 * step; the handler's failures go to the policy.
 */
export function createProcessor<Tx>(settings: ProcessSettings<Tx>): (delivery: Delivery) => Promise<void> {
  const { name, topic, handler, policy, inbox, deadLetterStore, holdOnDelay, visibility, sleep, now, signal } =
    settings;
  const { report, stats } = settings;
  const applyOnce = inbox.applyOnce?.bind(inbox);

  const decide = (error: unknown, attempts: number, message: Message): RetryDecision => {
    try {
      const decision = policy(error, attempts, message);
      const problem = retryDecisionProblem(decision);
      if (problem === undefined) return decision;
      throw new ValidationError({ path: 'retryPolicy', message: problem });
    } catch (policyError) {
      report(policyError, 'policy', message);
      const why = policyError instanceof Error ? policyError.message : String(policyError);
      return { action: 'dead-letter', reason: `the retry policy failed: ${why}` };
    }
  };

  const deadLetter = async (delivery: Delivery, error: unknown, reason: string, attempts: number, first: number) => {
    const record = deadLetterRecord(name, topic, delivery.message, {
      error,
      reason,
      attempts,
      firstFailureAt: first,
      at: now(),
    });
    await step('dead-letter', async () => (await deadLetterStore()).add(record));
    await step('ack', () => delivery.ack());
    stats.deadLettered += 1;
  };

  return async (delivery: Delivery): Promise<void> => {
    const message = delivery.message;
    const duplicate = async () => {
      await step('ack', () => delivery.ack());
      stats.duplicates += 1;
    };
    // A transactional inbox tells duplicates when it writes the mark.
    if (!applyOnce && (await step('inbox', () => inbox.has(name, message.id)))) return duplicate();
    /** The handler's own failure, told apart from the inbox's around it. */
    let thrown: { error: unknown } | undefined;
    const run = (tx: Tx) => {
      try {
        const result = runInMessageContext(message, () => handler(message, tx), name);
        if (!isPromiseLike(result)) return result;
        return Promise.resolve(result).catch((error: unknown) => {
          thrown = { error };
          throw error;
        });
      } catch (error) {
        thrown = { error };
        throw error;
      }
    };
    let attempts = 0;
    let firstFailure = 0;
    for (;;) {
      thrown = undefined;
      try {
        if (applyOnce) {
          if (!(await applyOnce(name, message.id, new Date(now()), run, delivery))) return duplicate();
        } else {
          await run(undefined as Tx);
        }
      } catch (error) {
        // The inbox failed around the handler (its database down or closed): the message comes back later.
        // Its other non-retryable refusals (an async handler where it must be synchronous) are the handler's.
        const refusal = isFactlineError(error) && !error.retryable && !isStoreClosedError(error);
        if (thrown === undefined && !refusal) throw new StepFailure('inbox', error);
        report(error, 'handler', message);
        attempts += 1;
        if (attempts === 1) firstFailure = now();
        const decision = decide(error, attempts, message);
        if (decision.action === 'discard') {
          await step('ack', () => delivery.ack());
          stats.discarded += 1;
          return;
        }
        if (decision.action === 'dead-letter') {
          await deadLetter(delivery, error, decision.reason, attempts, firstFailure);
          return;
        }
        if (decision.delayMs > 0 && !holdOnDelay) {
          await deadLetter(delivery, error, 'delayed retry, key moved on', attempts, firstFailure);
          return;
        }
        if (signal().aborted) {
          // Shutting down: give it back for whoever runs next, with the delay it was due.
          await step('release', () => delivery.release(decision.delayMs));
          return;
        }
        stats.retries += 1;
        await step('extend', () => delivery.extend(decision.delayMs + visibility));
        await sleep(decision.delayMs, signal());
        if (signal().aborted) {
          await step('release', () => delivery.release(0));
          return;
        }
        continue;
      }
      if (!applyOnce) await step('inbox', () => inbox.add(name, message.id, new Date(now())));
      // Counted once settled: a count read after it is never ahead of the transport.
      await step('ack', () => delivery.ack());
      stats.handled += 1;
      return;
    }
  };
}
