import { isFactlineError, isStoreClosedError } from '../errors/index.ts';
import type { HandlerCall } from './consumer-context.ts';
import type { ConsumerErrorStage } from './consumer-options.ts';
import type { Inbox } from './consumer-ports.ts';
import { StepFailure, step } from './consumer-step.ts';
import type { Message } from './message.ts';
import type { Delivery } from './transport.ts';

/** Step 4 of the pipeline, idempotency: each message's effect once, by its id. */
export interface InboxStep<Tx> {
  /** Before the first try: whether an inbox without `applyOnce` holds the message's mark already. */
  seen(message: Message): Promise<boolean>;
  /**
   * One try of the handler through the inbox: `'duplicate'` when a
   * transactional inbox finds the mark as it writes it. A failure of the
   * inbox itself rejects with a `StepFailure` (`'inbox'`); the handler's
   * failure rejects as it is, for the retry policy.
   */
  apply(delivery: Delivery, call: HandlerCall<Tx>, slot?: LaneSlot): Promise<'applied' | 'duplicate'>;
  /** After the handler succeeded: an inbox without `applyOnce` records the mark. */
  record(message: Message): Promise<void>;
  /** Forgets marks older than the retention, at most once a minute; a failure is reported (`'prune'`). */
  pruneWhenDue(): Promise<void>;
}

/**
 * The concurrency slot of the key lane a run belongs to: `waiting` while the
 * run only waits for a group commit shared with other runs (another key may
 * start meanwhile), `working` again once that commit settled.
 */
export interface LaneSlot {
  waiting(): void;
  working(): void;
}

export interface InboxStepSettings<Tx> {
  /** The consumer's name: the inbox keeps its marks under it. */
  name: string;
  inbox: Inbox<Tx>;
  retentionMs: number;
  now: () => number;
  report: (error: unknown, stage: ConsumerErrorStage, message?: Message) => void;
}

/**
 * @example
 * const inbox = inboxStep({ name, inbox: getInMemoryInbox(), retentionMs, now: Date.now, report });
 * if (!(await inbox.seen(message)) && (await inbox.apply(delivery, call)) === 'applied') await inbox.record(message);
 */
export function inboxStep<Tx>(settings: InboxStepSettings<Tx>): InboxStep<Tx> {
  const { name, inbox, retentionMs, now, report } = settings;
  // A transactional inbox writes the mark in the handler's transaction, and tells duplicates as it does.
  const applyOnce = inbox.applyOnce?.bind(inbox);
  let lastPrune = 0;
  return {
    async seen(message) {
      return !applyOnce && (await step('inbox', () => inbox.has(name, message.id)));
    },

    async apply(delivery, call, slot) {
      try {
        if (applyOnce) {
          const run = applyOnce(name, delivery.message.id, new Date(now()), call.run, delivery, slot?.waiting);
          const applied = await run.finally(() => slot?.working());
          return applied ? 'applied' : 'duplicate';
        }
        await call.run(undefined as Tx);
        return 'applied';
      } catch (error) {
        // The inbox failed around the handler (its database down or closed): the message comes back later.
        // Its other non-retryable refusals (an async handler where it must be synchronous) are the handler's.
        const refusal = isFactlineError(error) && !error.retryable && !isStoreClosedError(error);
        if (!call.threw && !refusal) throw new StepFailure('inbox', error);
        throw error;
      }
    },

    async record(message) {
      if (!applyOnce) await step('inbox', () => inbox.add(name, message.id, new Date(now())));
    },

    async pruneWhenDue() {
      if (now() - lastPrune <= 60_000) return;
      lastPrune = now();
      await inbox.prune(new Date(now() - retentionMs)).catch((error: unknown) => report(error, 'prune'));
    },
  };
}
