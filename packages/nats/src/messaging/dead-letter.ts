import { type DeadLetter, type DeadLetterStore, type Message, TransportError, uuidv7 } from '@factline/core';
import type { JsMsg } from '@nats-io/jetstream';

/** What the recording of a message at `max_deliver` needs from its group reader. */
export interface MaxDeliverSettings {
  store: DeadLetterStore | undefined;
  topic: string;
  group: string;
  /** Told every failure (stage `dead-letters`). */
  report(error: unknown): void;
  /** Whether the reader stopped: a failing store is then tried no more. */
  stopped(): boolean;
}

/**
 * Why a message is recorded at `max_deliver`. Every delivery counts at the server, not only the hand-outs to a
 * handler: a process holding it that died, a release, and every give-back of a partition (a `close()`, a
 * rebalance, a lost claim), which naks each message the process had pulled of it, handed out or not.
 */
const REASON =
  'the server would not deliver it again: max_deliver reached (deliveries given back unhandled at handovers count too: it may never have run)';

/**
 * Records a message at its last delivery (`max_deliver`) in the dead letters, then terminates it. The server
 * delivers it no more, so a store that fails is tried again (100 ms, doubling to 5 s) while the message is
 * kept from its ack wait, until it took the record or the reader stops: terminated before, it would be lost.
 *
 * @example
 * await deadLetterAtMaxDeliver(raw, message, { store, topic, group, report, stopped: () => stopped });
 */
export async function deadLetterAtMaxDeliver(raw: JsMsg, message: Message, settings: MaxDeliverSettings) {
  const { store, topic, group } = settings;
  try {
    if (store) {
      const at = new Date();
      const record: DeadLetter = {
        id: uuidv7(),
        consumer: group,
        topic,
        message,
        error: {
          type: 'DeliveryLimitExceeded',
          message: `delivered ${raw.info.deliveryCount} times without an acknowledgement (max_deliver)`,
        },
        reason: REASON,
        attempts: raw.info.deliveryCount,
        firstFailureAt: at,
        lastFailureAt: at,
        deadLetteredAt: at,
        redrives: [],
        state: 'dead',
      };
      for (let wait = 100; ; wait = Math.min(wait * 2, 5000)) {
        try {
          await store.add(record);
          break;
        } catch (error) {
          settings.report(error);
          if (settings.stopped()) {
            settings.report(
              new TransportError(
                `a message of ${topic}/${group} at max_deliver could not be dead-lettered before the reader stopped: the server will not deliver it again`,
              ),
            );
            return;
          }
          raw.working();
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    } else {
      settings.report(
        new TransportError(`a message of ${topic}/${group} reached max_deliver; no dead-letter store was given`),
      );
    }
    raw.term('max_deliver');
  } catch (error) {
    settings.report(error);
  }
}
