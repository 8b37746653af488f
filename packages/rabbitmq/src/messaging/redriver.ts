import { type Message, StoreClosedError, TransportError } from '@factline/core';
import { assertMessages, checkOptions, type OptionSpecOf, tlsOptionProblem } from '@factline/core/adapter';
import type { ConfirmChannel } from 'amqplib';
import { assertAmqpUrl, assertTlsUrl, closeWithin, openConnection, redactUrl } from '../connection.ts';
import { applicationOption, type RabbitTlsOptions } from '../options.ts';
import { recordedPartitionCount } from '../partition-count.ts';
import { assertQueueNames, topologyNames } from '../topology.ts';
import { checkQueues } from './check-queues.ts';
import { createPublisher, type Publisher } from './publish.ts';
import { redeliveryOf } from './redelivery.ts';

export interface RabbitRedriverOptions {
  /** `amqp://user:password@host:port/vhost` (or `amqps://`): the application's broker. */
  url: string;
  /** For an `amqps://` URL: the CA, client certificate and server name, as the transport's `tls`. */
  tls?: RabbitTlsOptions;
  /** The application whose queues it sends to: the transport's `application`. */
  application: string;
  /** How long `getRabbitRedriver` waits for the broker, at most 2147483647. Default 5000 ms. */
  connectTimeoutMs?: number;
}

/**
 * Sends dead letters back to one consumer group of an application on
 * RabbitMQ, for an operator's tool that did not declare the topology: it
 * declares nothing, and takes the partition count from the queues the
 * application declared, not from options.
 */
export interface RabbitRedriver {
  /**
   * The topic's partition count as the application recorded it (the
   * `x-max-length` of `<app>.<topic>.partitions`), once passive declares
   * found the group's queues `<app>.<topic>.<group>.0`, `.1`, … 0: no count
   * recorded or the group not declared. Creates nothing; a count above 0 is
   * kept for the redriver's life.
   */
  partitions(topic: string, group: string): Promise<number>;
  /**
   * Publishes `messages` straight into the group's partition queues (default
   * exchange, the queue each key maps to), persistent, `mandatory` and
   * confirmed, as the transport's `redeliver` does: no other group sees them.
   * Rejects with a `TransportError` that is not retryable, sending nothing,
   * when the group is not declared; with a `TransportError` when a message
   * comes back unroutable (its queue deleted meanwhile) or is not confirmed.
   * Declares nothing.
   */
  redeliver(topic: string, group: string, messages: readonly Message[]): Promise<void>;
  /** Closes the connection; resolves always, also after the broker went away. */
  close(): Promise<void>;
}

const spec: OptionSpecOf<RabbitRedriverOptions> = {
  url: 'non-empty-string',
  tls: tlsOptionProblem,
  application: applicationOption,
  connectTimeoutMs: 'timer-ms',
};

/**
 * A redriver on a connection of its own. Rejects with a `ValidationError`
 * for unknown or bad options, a URL that is not `amqp://` / `amqps://` and
 * `tls` with an `amqp://` URL, with a `TransportError` when the broker is
 * unreachable or refuses the credentials or the TLS handshake.
 *
 * @example
 * const redriver = await getRabbitRedriver({ url: 'amqp://guest:guest@127.0.0.1:5672', application: 'shop' });
 * try {
 *   if ((await redriver.partitions('orders', 'billing')) > 0) await redriver.redeliver('orders', 'billing', [message]);
 * } finally {
 *   await redriver.close();
 * }
 */
export async function getRabbitRedriver(given: RabbitRedriverOptions): Promise<RabbitRedriver> {
  const options = checkOptions(given, spec, 'getRabbitRedriver', { required: ['url', 'application'], optional: false });
  assertAmqpUrl(options.url, 'getRabbitRedriver');
  assertTlsUrl(options.url, options.tls, 'getRabbitRedriver.tls');
  const { application } = options;
  const names = topologyNames(application);
  const where = redactUrl(options.url);
  const connection = await openConnection(
    options.url,
    options.connectTimeoutMs ?? 5000,
    `factline redrive ${application} ${process.pid} ${Math.random().toString(36).slice(2, 8)}`,
    options.tls,
  );
  let closed = false;
  let lost = false;
  connection.on('close', () => {
    lost = true;
  });
  /** Per (topic, group), its partition count once found above 0. */
  const counts = new Map<string, Promise<number>>();
  let publishing: Promise<Publisher> | undefined;

  const usable = () => {
    if (closed) throw new StoreClosedError('RabbitMQ redriver');
    if (lost) throw new TransportError(`lost the connection to RabbitMQ at ${where}`);
  };
  // The shortest names a transport could have declared for the group: longer ones cannot exist.
  const checkNames = (topic: string, group: string) => assertQueueNames(names, 1, topic, group);

  /**
   * The topic's recorded partition count, as the transport reads it (queues of a higher count left by a count
   * lowered are read by nobody), when the group's queues are there: 0 for no record or no group.
   */
  const count = async (topic: string, group: string): Promise<number> => {
    let recorded: number | undefined;
    let found = 0;
    try {
      recorded = await recordedPartitionCount(connection, names, topic);
      if (recorded === undefined) return 0;
      const queues = Array.from({ length: recorded }, (_, p) => names.groupQueue(topic, group, p));
      await checkQueues(connection, queues, (_, ready) => {
        if (ready === undefined) return false;
        found += 1;
        return true;
      });
    } catch (error) {
      throw new TransportError(
        `counting the queues of group '${group}' of topic '${topic}' on RabbitMQ at ${where} failed: ${String(error)}`,
        { cause: error },
      );
    }
    if (found > 0 && found < recorded) {
      throw new TransportError(
        `topic '${topic}' has ${recorded} partitions recorded (${names.partitionCount(topic)}), but the queue ${names.groupQueue(topic, group, found)} of group '${group}' is missing: nothing was sent`,
        { retryable: false },
      );
    }
    return found;
  };

  const partitionsOf = (topic: string, group: string): Promise<number> => {
    const key = JSON.stringify([topic, group]);
    let counted = counts.get(key);
    if (!counted) {
      counted = count(topic, group);
      counts.set(key, counted);
      // A group not declared yet may be declared later: only a count found is kept.
      const forget = () => counts.get(key) === counted && counts.delete(key);
      counted.then((n) => n === 0 && forget(), forget);
    }
    return counted;
  };

  /** The confirm channel's publisher, opened at the first redelivery and again after its channel closed. */
  const publisher = (): Promise<Publisher> => {
    if (!publishing) {
      const opening = connection.createConfirmChannel().then((channel: ConfirmChannel) => {
        // A channel error rejects the publish waiting for its confirms, which tells it.
        channel.on('error', () => undefined);
        channel.on('close', () => {
          if (publishing === opening) publishing = undefined;
        });
        return createPublisher(channel);
      });
      publishing = opening;
      opening.catch(() => {
        if (publishing === opening) publishing = undefined;
      });
    }
    return publishing.catch((error: unknown) => {
      throw new TransportError(`opening a channel to RabbitMQ at ${where} failed: ${String(error)}`, { cause: error });
    });
  };

  return {
    async partitions(topic, group) {
      usable();
      checkNames(topic, group);
      return partitionsOf(topic, group);
    },

    async redeliver(topic, group, messages) {
      usable();
      checkNames(topic, group);
      assertMessages(messages);
      const partitions = await partitionsOf(topic, group);
      if (partitions === 0) {
        throw new TransportError(
          `group '${group}' of topic '${topic}' is not declared on RabbitMQ at ${where} for the application '${application}' (no queue '${names.groupQueue(topic, group, 0)}'): nothing was sent`,
          { retryable: false },
        );
      }
      if (messages.length === 0) return;
      const outcomes = await (await publisher()).publish(redeliveryOf(names, topic, group, partitions, messages));
      const returned = outcomes.filter((outcome) => outcome === 'returned').length;
      if (returned > 0) {
        counts.delete(JSON.stringify([topic, group]));
        throw new TransportError(
          `${returned} of ${messages.length} messages to group '${group}' of topic '${topic}' came back unroutable: its queues were deleted since they were counted`,
          { retryable: false },
        );
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      // Bounded: a broker gone or silent would leave amqplib's close pending for ever.
      await closeWithin(connection);
    },
  };
}
