import { TransportError } from '@factline/core';
import type { JetStreamManager } from '@nats-io/jetstream';
import { isStreamMissing, type Names, restoreStream } from '../topology.ts';
import type { StreamWatch } from './stream-watch.ts';

/** What the restorer of one transport needs. */
export interface RestoreSettings {
  jsm: JetStreamManager;
  names: Names;
  duplicateWindowMs: number;
  /**
   * Told that the stream was found missing (every reader starts over, no publish counts on a consumer seen in
   * it), then given the stream there to adopt.
   */
  watch: Pick<StreamWatch, 'deleted' | 'adopt'>;
  /** Adds again every consumer this transport declared (a stream made again has none). */
  consumers(): Promise<unknown>;
  /** Told that the stream was made again (stage `topology`). */
  report(error: unknown): void;
}

/**
 * The stream of a running transport, made again when it is found missing at
 * the server (deleted by an operator): every reader of the process starts
 * over first (what they held went with the stream, and a stream made again
 * numbers its messages from 1 again: an ack by sequence would settle
 * another message); then it is made with the transport's own configuration,
 * only where no stream of its name is (one that is there is left as it is),
 * and with the consumers the transport declared, before anything is
 * published to it again: a stream of interest retention drops a message no
 * consumer takes. One restore at a time; callers meanwhile share it. Told to
 * `report` when this process made the stream; rejects with a retryable
 * `TransportError` when the server could not be asked or refused.
 *
 * @example
 * const restore = createStreamRestorer({ jsm, names, duplicateWindowMs, watch, consumers, report });
 * await restore(); // after a publish answered "no responders", or a pull "stream not found"
 */
export function createStreamRestorer(settings: RestoreSettings): () => Promise<void> {
  const { names } = settings;
  let restoring: Promise<void> | undefined;
  const run = async () => {
    settings.watch.deleted();
    let made: boolean;
    try {
      made = await restoreStream(settings.jsm, names, settings.duplicateWindowMs);
      await settings.watch.adopt();
    } catch (error) {
      throw new TransportError(`making the stream '${names.stream}' again failed: ${String(error)}`, { cause: error });
    }
    if (made) {
      settings.report(
        new TransportError(
          `the stream '${names.stream}' was missing at the server (deleted): made again with this transport's configuration; the messages it held are lost`,
        ),
      );
    }
    await settings.consumers();
  };
  return () => {
    restoring ??= run().finally(() => {
      restoring = undefined;
    });
    return restoring;
  };
}

/** Whether a failed call found the stream missing: a publish no stream answered (503), or the API's "stream not found". */
export const foundNoStream = (error: unknown): boolean => {
  if (isStreamMissing(error)) return true;
  for (let e = error, depth = 0; depth < 5 && e instanceof Error; depth += 1, e = e.cause) {
    if (e.name === 'NoResponders') return true;
  }
  return false;
};
