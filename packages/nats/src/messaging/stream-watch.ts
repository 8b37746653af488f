import { TransportError } from '@factline/core';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Names } from '../topology.ts';

/** What the watch of one transport's stream needs. */
export interface StreamWatchSettings {
  nc: NatsConnection;
  names: Names;
  /** Told (stage `topology`): advisories refused. */
  report(error: unknown): void;
}

/**
 * Watches the application's stream for changes made by anyone, with the
 * server's advisories (`$JS.EVENT.ADVISORY.STREAM.DELETED.<app>`,
 * `…STREAM.CREATED.<app>`, `…CONSUMER.DELETED.<app>.*`, core messages: no
 * cost on a publish): each moves `epoch` on, so that nothing remembered of
 * the stream before (the consumers a publish saw) is trusted. Advisories are
 * not kept for a disconnected client: a disconnection and a reconnection
 * move `epoch` on too. Where the server refuses the subscriptions
 * (permissions), `trusted` is false (told once).
 *
 * @example
 * const watch = createStreamWatch({ nc, names, report });
 * await watch.start();
 * if (watch.trusted() && seenAt === watch.epoch()) { ... } // what was seen at seenAt still holds
 */
export function createStreamWatch(settings: StreamWatchSettings) {
  const { nc, names } = settings;
  let epoch = 0;
  let refused: unknown;
  let trusted = false;

  const moved = () => {
    epoch += 1;
  };
  const subscribe = (subject: string): Subscription =>
    nc.subscribe(subject, {
      callback: (error) => {
        if (!error) moved();
        else refused ??= error;
      },
    });
  const subscriptions = [
    subscribe(`$JS.EVENT.ADVISORY.STREAM.DELETED.${names.stream}`),
    subscribe(`$JS.EVENT.ADVISORY.CONSUMER.DELETED.${names.stream}.*`),
    subscribe(`$JS.EVENT.ADVISORY.STREAM.CREATED.${names.stream}`),
  ];

  return {
    /** Resolves once the server took (or refused) the subscriptions. */
    async start() {
      await nc.flush();
      trusted = refused === undefined;
      if (!trusted) {
        settings.report(
          new TransportError(
            `the server refused the subscriptions to the advisories of the stream '${names.stream}' ($JS.EVENT.ADVISORY.>): ${String(refused)}; a publish with requireSubscription reads the stream's consumers every time`,
          ),
        );
      }
    },
    /** Moved on whenever what was seen of the stream may no longer be so. */
    epoch: () => epoch,
    /** Whether changes are told (the advisories subscribed to): else nothing seen of the stream is to be kept. */
    trusted: () => trusted && refused === undefined,
    /** This process found the stream missing. */
    deleted: moved,
    disconnected: moved,
    reconnected: moved,
    close() {
      for (const subscription of subscriptions) if (!subscription.isClosed()) subscription.unsubscribe();
    },
  };
}

export type StreamWatch = ReturnType<typeof createStreamWatch>;
