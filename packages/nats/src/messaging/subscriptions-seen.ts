import type { JetStreamManager } from '@nats-io/jetstream';
import { isStreamMissing, type Names } from '../topology.ts';
import type { StreamWatch } from './stream-watch.ts';

/** What the check of a topic's subscriptions needs. */
export interface SubscriptionsSettings {
  jsm: JetStreamManager;
  names: Names;
  watch: Pick<StreamWatch, 'epoch' | 'trusted'>;
  /** Makes the stream found missing again, with the transport's consumers. */
  restore(): Promise<void>;
}

/**
 * Whether any group (of any process) has a consumer on a topic, for a
 * publish with `requireSubscription`: read from the stream's consumer list.
 * A yes is remembered while the stream watch's epoch stays (no deletion of
 * the stream or of a consumer told since, no stream made, no reconnection),
 * and never where the server refused the watch its advisories: a consumer
 * seen in a stream deleted since is no reason to publish to the one there
 * now. The stream found missing is made again and asked once more.
 *
 * @example
 * const subscriptions = createSubscriptionsSeen({ jsm, names, watch, restore });
 * if (!(await subscriptions.has('orders'))) throw new NoSubscriptionError('orders');
 */
export function createSubscriptionsSeen(settings: SubscriptionsSettings) {
  const { jsm, names, watch } = settings;
  /** Per topic, the watch's epoch when a consumer of it was seen. */
  const seen = new Map<string, number>();
  const has = async (topic: string, restoring = true): Promise<boolean> => {
    const epoch = watch.epoch();
    if (watch.trusted() && seen.get(topic) === epoch) return true;
    const prefix = names.topicPrefix(topic);
    try {
      for await (const info of await jsm.consumers.list(names.stream)) {
        if (info.config.filter_subject?.startsWith(prefix)) {
          seen.set(topic, epoch);
          return true;
        }
      }
    } catch (error) {
      if (!isStreamMissing(error)) throw error;
      if (restoring) {
        await settings.restore();
        return has(topic, false);
      }
    }
    return false;
  };
  return {
    has: (topic: string) => has(topic),
    /** A consumer of `topic` was made by this process, the watch at `epoch` when it began. */
    seen(topic: string, epoch: number) {
      seen.set(topic, epoch);
    },
    /** A consumer of `topic` was found missing. */
    forget(topic: string) {
      seen.delete(topic);
    },
  };
}
