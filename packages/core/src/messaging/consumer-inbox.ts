import { isFactlineError, isStoreClosedError } from '../errors/index.ts';
import type { HandlerCall } from './consumer-context.ts';
import type { ConsumerErrorStage } from './consumer-options.ts';
import { type Inbox, isPromiseLike } from './consumer-ports.ts';
import { StepFailure } from './consumer-step.ts';
import type { Message } from './message.ts';
import type { Delivery } from './transport.ts';

/** Step 4 of the pipeline, idempotency: each message's effect once, by its id. */
export interface InboxStep<Tx> {
  /**
   * The inbox keeps its marks apart from the handler's run (it has no
   * `applyOnce`): `seen` and `record` do the work, otherwise they do nothing.
   */
  readonly marksApart: boolean;
  /** Before the first try: whether an inbox without `applyOnce` holds the message's mark already. */
  seen(message: Message): Promise<boolean>;
  /**
   * One try of the handler through the inbox: `'duplicate'` when a
   * transactional inbox finds the mark as it writes it. A failure of the
   * inbox itself rejects with a `StepFailure` (`'inbox'`); the handler's
   * failure rejects (or throws) as it is, for the retry policy. Without
   * `applyOnce` a handler that returns no promise is done at once: the
   * outcome comes without a promise.
   */
  apply(
    delivery: Delivery,
    call: HandlerCall<Tx>,
    slot?: LaneSlot,
  ): 'applied' | 'duplicate' | Promise<'applied' | 'duplicate'>;
  /** After the handler succeeded: an inbox without `applyOnce` records the mark. */
  record(message: Message): Promise<void>;
  /**
   * Forgets marks older than the retention, at most once a minute; a failure (thrown or rejected) is
   * reported (`'prune'`). Never rejects.
   */
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
  /**
   * Extends the visibility of the deliveries waiting in the lane behind the
   * one in flight (a delayed retry holds its key: they must not come back to
   * another consumer meanwhile). Failures are reported, never thrown.
   */
  extendWaiting?(ms: number): Promise<void>;
}

const applied = () => 'applied' as const;
const inboxFailure = (error: unknown): never => {
  throw new StepFailure('inbox', error);
};
/** The inbox's own work; its failure (thrown or rejected) rejects as a `StepFailure` (`'inbox'`). */
const inboxWork = <T>(work: () => Promise<T>): Promise<T> => {
  try {
    return work().then(undefined, inboxFailure);
  } catch (error) {
    return Promise.reject(new StepFailure('inbox', error));
  }
};

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
 * // The pipeline skips `seen` and `record` where `inbox.marksApart` is false: they do nothing there.
 */
export function inboxStep<Tx>(settings: InboxStepSettings<Tx>): InboxStep<Tx> {
  const { name, inbox, retentionMs, now, report } = settings;

  /** A transactional inbox's try: the handler and the mark in one transaction. */
  const applyInTransaction = async (
    applyOnce: NonNullable<Inbox<Tx>['applyOnce']>,
    delivery: Delivery,
    call: HandlerCall<Tx>,
    slot: LaneSlot | undefined,
  ): Promise<'applied' | 'duplicate'> => {
    try {
      let done: boolean;
      try {
        const run = (tx: Tx) => call.run(tx);
        done = await applyOnce(name, delivery.message.id, new Date(now()), run, delivery, slot?.waiting);
      } finally {
        slot?.working();
      }
      return done ? 'applied' : 'duplicate';
    } catch (error) {
      // The inbox failed around the handler (its database down or closed): the message comes back later.
      // Its other non-retryable refusals (an async handler where it must be synchronous) are the handler's.
      const refusal = isFactlineError(error) && !error.retryable && !isStoreClosedError(error);
      if (!call.threw && !refusal) throw new StepFailure('inbox', error);
      throw error;
    }
  };

  // A transactional inbox writes the mark in the handler's transaction, and tells duplicates as it does.
  const applyOnce = inbox.applyOnce?.bind(inbox);
  let lastPrune = 0;
  return {
    marksApart: !applyOnce,

    seen(message) {
      if (applyOnce) return Promise.resolve(false);
      return inboxWork(() => inbox.has(name, message.id));
    },

    apply(delivery, call, slot) {
      if (applyOnce) return applyInTransaction(applyOnce, delivery, call, slot);
      // Only the handler runs here, so a failure is the handler's (rethrown as it is); a result that
      // is no promise needs no await.
      const result = call.run(undefined as Tx);
      return isPromiseLike(result) ? Promise.resolve(result).then(applied) : 'applied';
    },

    record(message) {
      if (applyOnce) return Promise.resolve();
      return inboxWork(() => inbox.add(name, message.id, new Date(now())));
    },

    async pruneWhenDue() {
      if (now() - lastPrune <= 60_000) return;
      lastPrune = now();
      try {
        // An inbox on a synchronous driver throws where its statement fails, and may return no promise.
        await inbox.prune(new Date(now() - retentionMs), name);
      } catch (error) {
        report(error, 'prune');
      }
    },
  };
}
