import { ValidationError } from '../errors/index.ts';
import { noteAttempt, noteFailedAttempt, noteSettle } from '../tracing/messaging-spans.ts';
import type { DeadLetterFailure } from './consumer-dead-letters.ts';
import type { LaneSlot } from './consumer-inbox.ts';
import { type ConsumerErrorStage, retryDecisionProblem } from './consumer-options.ts';
import { isPromiseLike, type RetryDecision, type RetryPolicy } from './consumer-ports.ts';
import { StepFailure, step } from './consumer-step.ts';
import type { Message } from './message.ts';
import type { Delivery } from './transport.ts';

export interface RetryStepSettings {
  policy: RetryPolicy;
  /** `onDelayedRetry: 'wait'`: a delayed retry holds the key; otherwise the message is dead-lettered. */
  holdOnDelay: boolean;
  /**
   * A stop during a retry's delay gives the message back with the rest of its delay (the transport's
   * `delayedReleaseHoldsKey`); otherwise due at once, so that its key's later messages never run before it.
   */
  keepDelayOnStop: boolean;
  /** The visibility timeout: a delivery waiting for its retry is kept invisible this much past the delay. */
  visibility: number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  now: () => number;
  /** The consumer's stop signal (a new one per start). */
  signal: () => AbortSignal;
  report: (error: unknown, stage: ConsumerErrorStage, message?: Message) => void;
  stats: { retries: number; discarded: number };
  /** Step 2, where the policy sends a message it gives up on. */
  deadLetter: (delivery: Delivery, failure: DeadLetterFailure) => Promise<void>;
}

/**
 * Step 3 of the pipeline, the retry policy: runs `attempt(delivery, slot)`
 * (one try of the handler through the inbox) until it succeeds, and returns its result. Each
 * failure of the handler is reported (`'handler'`) and put to the policy:
 * discard (acknowledged), dead-letter (step 2), or retry after its delay
 * (the visibility of the delivery, and of its key's deliveries waiting in
 * its lane, extended meanwhile). A delayed retry with
 * `holdOnDelay` off dead-letters instead; one due while the consumer stops
 * gives the message back with its delay (`keepDelayOnStop`) or due at once. Those end in `'settled'`. A
 * `StepFailure` (the inbox, a settle) rejects as it is.
 *
 * @example
 * const withRetries = retryStep({ policy: defaultRetryPolicy(), holdOnDelay: true, keepDelayOnStop: true, visibility, sleep, now, signal, report, stats, deadLetter });
 * const attempt = (delivery, slot) => inbox.apply(delivery, handlerCall(name, handler, delivery.message), slot);
 * const outcome = await withRetries(delivery, attempt, slot);
 */
export function retryStep(settings: RetryStepSettings) {
  const { policy, holdOnDelay, keepDelayOnStop, visibility, sleep, now, signal, report, stats, deadLetter } = settings;

  /** The policy's decision; a policy that throws or answers no `RetryDecision` is reported and dead-letters. */
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

  return async <T>(
    delivery: Delivery,
    attempt: (delivery: Delivery, slot: LaneSlot | undefined) => T | Promise<T>,
    slot?: LaneSlot,
  ): Promise<T | 'settled'> => {
    const message = delivery.message;
    let attempts = 0;
    let firstFailureAt = 0;
    for (;;) {
      try {
        noteAttempt(attempts + 1);
        const result = attempt(delivery, slot);
        return isPromiseLike(result) ? await result : result;
      } catch (error) {
        if (error instanceof StepFailure) throw error;
        report(error, 'handler', message);
        attempts += 1;
        if (attempts === 1) firstFailureAt = now();
        const decision = decide(error, attempts, message);
        noteFailedAttempt(error, attempts, decision);
        if (decision.action === 'discard') {
          await step('ack', () => delivery.ack());
          noteSettle('discard');
          stats.discarded += 1;
          return 'settled';
        }
        if (decision.action === 'dead-letter') {
          await deadLetter(delivery, { error, reason: decision.reason, attempts, firstFailureAt });
          return 'settled';
        }
        if (decision.delayMs > 0 && !holdOnDelay) {
          await deadLetter(delivery, { error, reason: 'delayed retry, key moved on', attempts, firstFailureAt });
          return 'settled';
        }
        if (signal().aborted) {
          // Shutting down: give it back for whoever runs next, with the delay it was due where that keeps order.
          await step('release', () => delivery.release(keepDelayOnStop ? decision.delayMs : 0));
          noteSettle('release');
          return 'settled';
        }
        stats.retries += 1;
        await step('extend', () => delivery.extend(decision.delayMs + visibility));
        // The delay holds the key: its later deliveries, here already, must not come back to another consumer.
        await slot?.extendWaiting?.(decision.delayMs + visibility);
        const dueAt = now() + decision.delayMs;
        await sleep(decision.delayMs, signal());
        if (signal().aborted) {
          // Stopped during the delay: given back with what is left of it where the transport holds the key
          // meanwhile; elsewhere due at once, since its key's later messages go back to the queue ahead of a
          // message away for a delay, and would run before it.
          const left = Math.max(0, dueAt - now());
          await step('release', () => delivery.release(keepDelayOnStop ? left : 0));
          noteSettle('release');
          return 'settled';
        }
      }
    }
  };
}
