import { TransportError } from '@factline/core';
import type { JetStreamManager, StreamInfo } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { isStreamMissing, type Names } from '../topology.ts';

/** The time of a deletion advisory (server time, RFC 3339 with nanoseconds); undefined when unreadable. */
const deletedAt = (msg: Msg): string | undefined => {
  try {
    const { timestamp } = msg.json<{ timestamp?: unknown }>();
    return typeof timestamp === 'string' ? timestamp : undefined;
  } catch {
    return undefined;
  }
};

/** A server time (RFC 3339, UTC, up to nanoseconds) as nanoseconds since the epoch. */
const nanosOf = (time: string): bigint | undefined => {
  const match = /^(.*?T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(time);
  const ms = match ? Date.parse(`${match[1]}Z`) : Number.NaN;
  if (!match || Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((match[2] ?? '').padEnd(9, '0'));
};

/** Whether server time `a` is before `b`; false when either is unreadable (the safe answer: taken as a deletion). */
const isBefore = (a: string | undefined, b: string): boolean => {
  const [x, y] = [a === undefined ? undefined : nanosOf(a), nanosOf(b)];
  return x !== undefined && y !== undefined && x < y;
};

/** What the watch of one transport's stream needs. */
export interface StreamWatchSettings {
  nc: NatsConnection;
  jsm: JetStreamManager;
  names: Names;
  /** The stream as the transport found or made it at start. */
  info: StreamInfo;
  /** The stream was deleted (or replaced): every reader forgets what it held of it (its acks are refused). */
  gone(): void;
  /** Told (stage `topology`): advisories refused, a check that failed. */
  report(error: unknown): void;
}

/**
 * Watches the application's stream for changes made by anyone, with the
 * server's advisories (`$JS.EVENT.ADVISORY.STREAM.DELETED.<app>`,
 * `…STREAM.CREATED.<app>`, `…CONSUMER.DELETED.<app>.*`, core messages: no
 * cost on a publish): a deletion makes every reader start over (`gone`); a
 * stream made is adopted (its creation time read: the stream the readers
 * hold messages of). Each, and a consumer deleted, moves `epoch` on, so that
 * nothing remembered of the stream before (the consumers a publish saw) is
 * trusted. Advisories are not kept for a disconnected client: a
 * reconnection moves `epoch` on and reads the stream's creation time,
 * another than the one adopted taken as a deletion (`checking` is true until
 * then). Where the server refuses the subscriptions (permissions), `trusted`
 * is false (told once).
 *
 * @example
 * const watch = createStreamWatch({ nc, jsm, names, info, gone, report });
 * await watch.start();
 * if (watch.trusted() && seenAt === watch.epoch()) { ... } // what was seen at seenAt still holds
 */
export function createStreamWatch(settings: StreamWatchSettings) {
  const { nc, names } = settings;
  let epoch = 0;
  /** The creation time of the stream the readers hold messages of; undefined after a deletion, until one is adopted. */
  let known: string | undefined = settings.info.created;
  let refused: unknown;
  let trusted = false;
  /** Reconnections whose check is under way. */
  let checking = 0;
  let closed = false;

  /** The stream is gone (or another one is there): nothing of it is remembered. */
  const deleted = () => {
    epoch += 1;
    known = undefined;
    settings.gone();
  };

  /** One adoption at a time: each reads the stream after the one before, so an older answer never wins. */
  let adopting: Promise<unknown> = Promise.resolve();
  const adopt = (): Promise<StreamInfo> => {
    const run = async () => {
      const info = await settings.jsm.streams.info(names.stream);
      // Another stream than the one held (made while this process was not told): held messages are gone.
      if (known !== undefined && info.created !== known) {
        settings.report(
          new TransportError(
            `the stream '${names.stream}' at the server was made again (at ${info.created}) unseen by this process, disconnected then: what its readers held of the one before is dropped`,
          ),
        );
        deleted();
      }
      epoch += 1;
      known = info.created;
      return info;
    };
    const next = adopting.then(run, run);
    adopting = next.catch(() => undefined);
    return next;
  };

  const told = (doing: string) => (error: unknown) => {
    if (closed) return;
    // Missing: deleted meanwhile (its advisory says so, and a reader or a publish makes it again).
    if (isStreamMissing(error)) return;
    settings.report(
      new TransportError(`${doing} the stream '${names.stream}' failed: ${String(error)}`, { cause: error }),
    );
  };

  const subscribe = (subject: string, on: (msg: Msg) => void): Subscription =>
    nc.subscribe(subject, {
      callback: (error, msg) => {
        if (!error) on(msg);
        else refused ??= error;
      },
    });
  const subscriptions = [
    subscribe(`$JS.EVENT.ADVISORY.STREAM.DELETED.${names.stream}`, (msg) => {
      // Told late, of a stream older than the one held (this process made it again first): nothing to forget.
      if (known !== undefined && isBefore(deletedAt(msg), known)) return;
      deleted();
    }),
    subscribe(`$JS.EVENT.ADVISORY.CONSUMER.DELETED.${names.stream}.*`, () => {
      epoch += 1;
    }),
    subscribe(`$JS.EVENT.ADVISORY.STREAM.CREATED.${names.stream}`, () => {
      epoch += 1;
      adopt().catch(told('reading the new'));
    }),
  ];

  return {
    /** Resolves once the server took (or refused) the subscriptions. */
    async start() {
      await nc.flush();
      trusted = refused === undefined;
      if (!trusted) {
        settings.report(
          new TransportError(
            `the server refused the subscriptions to the advisories of the stream '${names.stream}' ($JS.EVENT.ADVISORY.>): ${String(refused)}; a publish with requireSubscription reads the stream's consumers every time, and a reader learns of the stream made again by another process only when a pull fails or brings a message of it`,
          ),
        );
      }
    },
    /** Moved on whenever what was seen of the stream may no longer be so. */
    epoch: () => epoch,
    /** Whether changes are told (the advisories subscribed to): else nothing seen of the stream is to be kept. */
    trusted: () => trusted && refused === undefined,
    /** True from a reconnection until the stream's creation time was read again. */
    checking: () => checking > 0,
    /** This process found the stream missing. */
    deleted,
    /** The stream there adopted as the one the readers hold messages of (after this process made it again). */
    adopt,
    disconnected() {
      epoch += 1;
    },
    /** Advisories sent while disconnected are lost: the stream there is compared with the one held. */
    async reconnected() {
      epoch += 1;
      checking += 1;
      try {
        await adopt();
      } catch (error) {
        if (isStreamMissing(error)) deleted();
        else told('checking')(error);
      } finally {
        checking -= 1;
      }
    },
    close() {
      closed = true;
      for (const subscription of subscriptions) if (!subscription.isClosed()) subscription.unsubscribe();
    },
  };
}

export type StreamWatch = ReturnType<typeof createStreamWatch>;
