import { type Message, StoreClosedError, TransportError } from '@factline/core';
import { assertMessages, checkOptions, type OptionSpecOf, tlsOptionProblem } from '@factline/core/adapter';
import type { JetStreamManager } from '@nats-io/jetstream';
import { type NatsTlsOptions, openConnection, openManager } from '../connection.ts';
import { applicationOption } from '../options.ts';
import { assertTopicAndGroup, isNotFound, topologyNames } from '../topology.ts';
import { createPublisher } from './publish.ts';
import { encodeRedelivery } from './redelivery.ts';

export interface NatsRedriverOptions {
  /** `nats://host:port` (or `tls://`), optionally `nats://user:password@host:port`; several comma-separated. */
  url: string;
  /** For a `tls://` URL: the CA, client certificate and server name to use, as the transport's `tls`. */
  tls?: NatsTlsOptions;
  /** The application whose stream (`<application>`) and consumers the dead letters go back to. */
  application: string;
  /**
   * How long `getNatsRedriver` waits for the server, at most 2147483647 (a
   * timer's limit); also the publish deadline (at least 5000 ms). Default 5000 ms.
   */
  connectTimeoutMs?: number;
}

/**
 * Sends dead letters back to one group of a topic, for an operator's tool
 * that did not declare the application's topology: it reads the group's
 * consumers and publishes, and creates or changes nothing on the server
 * (no stream, no consumer, no claim bucket).
 */
export interface NatsRedriver {
  /**
   * The group's partition consumers on the application's stream: durable
   * consumers `<topic>~~<group>~~0`, `~~1`, … counted by consumer info until
   * the first missing one. 0: the group is not declared (or the stream does
   * not exist). A count above 0 is remembered for the redriver's life; 0 is
   * asked again next time. Creates nothing.
   */
  partitions(topic: string, group: string): Promise<number>;
  /**
   * Publishes `messages` through JetStream to `group`'s own subject on the
   * partition of each message's key (`partitionOf(key, partitions(topic, group))`),
   * encoded as the transport's `redeliver` encodes them, each with a
   * `Nats-Msg-Id` of its own so the duplicate window never drops a redrive;
   * resolves when the stream acknowledged every one. Rejects with a
   * `TransportError` (`retryable: false`) naming topic and group when the
   * group is not declared, having sent nothing; with a retryable one when a
   * publish is not acknowledged. Creates nothing.
   */
  redeliver(topic: string, group: string, messages: readonly Message[]): Promise<void>;
  /** Closes the connection. Resolves always, also after the server went away; again at once. */
  close(): Promise<void>;
}

const spec: OptionSpecOf<NatsRedriverOptions> = {
  url: 'non-empty-string',
  tls: tlsOptionProblem,
  application: applicationOption,
  connectTimeoutMs: 'timer-ms',
};

/** Whether the durable consumer of one partition exists; a missing stream counts as missing. */
async function consumerExists(jsm: JetStreamManager, stream: string, consumer: string): Promise<boolean> {
  try {
    await jsm.consumers.info(stream, consumer);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

/**
 * Opens a redriver on the application's stream. Rejects with a
 * `ValidationError` for an unknown or bad option (a URL that is not
 * `nats://` / `tls://` included), with a `TransportError` as
 * `getNatsTransport` does when the server is unreachable, refuses the
 * credentials or the TLS handshake, or has JetStream disabled.
 *
 * @example
 * const redriver = await getNatsRedriver({ url: 'nats://127.0.0.1:4222', application: 'shop' });
 * try {
 *   await redriver.redeliver('orders', 'billing', [deadLetter.message]);
 * } finally {
 *   await redriver.close();
 * }
 */
export async function getNatsRedriver(given: NatsRedriverOptions): Promise<NatsRedriver> {
  const options = checkOptions(given, spec, 'getNatsRedriver', { required: ['url', 'application'], optional: false });
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  const names = topologyNames(options.application);
  const nc = await openConnection(options.url, {
    timeoutMs: connectTimeoutMs,
    reconnectWaitMs: 250,
    name: `factline redriver ${options.application} ${process.pid}`,
    tls: options.tls,
    caller: 'getNatsRedriver',
  });
  let jsm: JetStreamManager;
  try {
    jsm = await openManager(nc, options.url);
  } catch (error) {
    await nc.close().catch(() => undefined);
    throw error;
  }
  const publisher = createPublisher(nc, Math.max(5000, connectTimeoutMs));
  /** Per (topic, group), its partition count: a declared group's is remembered, a failure or 0 forgotten. */
  const counts = new Map<string, Promise<number>>();
  let closing: Promise<void> | undefined;

  const countPartitions = async (topic: string, group: string): Promise<number> => {
    let count = 0;
    while (await consumerExists(jsm, names.stream, names.consumer(topic, group, count))) count += 1;
    return count;
  };

  const partitions = (topic: string, group: string): Promise<number> => {
    const key = JSON.stringify([topic, group]);
    let counted = counts.get(key);
    if (!counted) {
      counted = countPartitions(topic, group).catch((error: unknown) => {
        throw new TransportError(
          `reading the consumers of ${topic}/${group} on the stream '${names.stream}' failed: ${String(error)}`,
          { cause: error },
        );
      });
      const own = counted;
      counts.set(key, own);
      const forget = () => {
        if (counts.get(key) === own) counts.delete(key);
      };
      // A group not declared now may be declared before the next question.
      own.then((count) => {
        if (count === 0) forget();
      }, forget);
    }
    return counted;
  };

  return {
    async partitions(topic, group) {
      if (closing) throw new StoreClosedError('NATS redriver');
      assertTopicAndGroup(topic, group);
      return partitions(topic, group);
    },

    async redeliver(topic, group, messages) {
      if (closing) throw new StoreClosedError('NATS redriver');
      assertTopicAndGroup(topic, group);
      assertMessages(messages);
      const count = await partitions(topic, group);
      if (count === 0) {
        throw new TransportError(
          `cannot redeliver to group '${group}' of topic '${topic}': the group is not declared in the NATS application '${options.application}' (no consumer '${names.consumer(topic, group, 0)}' on the stream '${names.stream}')`,
          { retryable: false },
        );
      }
      await publisher.publishAll(encodeRedelivery(names, topic, group, count, messages));
    },

    close() {
      closing ??= (async () => {
        publisher.close();
        // Nothing to drain: every publish of a resolved redeliver has its PubAck.
        await nc.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}
