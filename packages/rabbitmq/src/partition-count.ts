import { TransportError } from '@factline/core';
import type { ChannelModel } from 'amqplib';
import { closeWithin } from './connection.ts';
import type { Declared, Names } from './topology.ts';

/**
 * Records `partitions` as the partition count of `topic`, or checks the one
 * recorded: a key's partition is its hash modulo the count, so two processes
 * given two counts would send one key to two queues, read by two consumers,
 * and its order would be lost without a word. The record is the queue
 * `<app>.<topic>.partitions`, an empty quorum queue whose `x-max-length` is
 * the count: RabbitMQ creates it at the first declaration and refuses a
 * declaration with another `x-max-length` (406 PRECONDITION_FAILED), which
 * answers both at once, with no race between processes. The declaration runs
 * on a channel of its own, since the refusal closes the channel it came on.
 *
 * Another count recorded: a `TransportError` that is not retryable, naming
 * both counts and how to change the count on purpose. Anything else (the
 * connection, a refused permission): a retryable `TransportError`.
 *
 * @example
 * await checkPartitionCount(connection, names, 'shop', 'orders', 4, declared);
 */
/** The count in the broker's refusal of a declaration with another `x-max-length`. */
const RECORDED = /inequivalent arg 'x-max-length'.*but current is (?:the value )?'(\d+)'/;

export async function checkPartitionCount(
  connection: ChannelModel,
  names: Names,
  application: string,
  topic: string,
  partitions: number,
  declared: Declared,
): Promise<void> {
  const queue = names.partitionCount(topic);
  let failure: unknown;
  try {
    const channel = await connection.createChannel();
    // The refusal arrives as the channel's close too; the declaration's rejection below says it.
    channel.on('error', () => undefined);
    try {
      await channel.assertQueue(queue, {
        durable: true,
        arguments: { 'x-queue-type': 'quorum', 'x-max-length': partitions },
      });
      declared.queues.add(queue);
    } finally {
      // Not waited for: the check is kept once passed, and a close-ok that never comes must not hold it.
      void closeWithin(channel);
    }
    return;
  } catch (error) {
    failure = error;
  }
  const text = String((failure as Error)?.message ?? failure);
  const recorded = RECORDED.exec(text)?.[1];
  if (recorded !== undefined) {
    throw new TransportError(
      `topic '${topic}' has ${recorded} partitions in the RabbitMQ application '${application}' (the x-max-length of the queue ${queue}), and this transport was given partitions: ${partitions}: every process of an application must use the same count. To change it: stop every process of the application, let its groups drain, delete the queue ${queue} (rabbitmqctl delete_queue ${queue}), and start them all with the new count`,
      { retryable: false, cause: failure },
    );
  }
  if (/inequivalent arg 'x-max-length'/.test(text)) {
    throw new TransportError(
      `the queue ${queue}, which records the partition count of topic '${topic}', has an x-max-length that is no count: ${text}`,
      { retryable: false, cause: failure },
    );
  }
  throw new TransportError(`checking the partition count of topic '${topic}' on RabbitMQ failed: ${text}`, {
    cause: failure,
  });
}

/**
 * The partition count recorded for `topic` (see `checkPartitionCount`), or
 * `undefined` when none is, creating nothing: it declares the record with an
 * `x-max-length` of -1, which no queue has. The broker refuses it against the
 * queue there, naming the count, and refuses the value itself for a queue
 * that is not there. Any other failure rejects.
 *
 * @example
 * const partitions = await recordedPartitionCount(connection, names, 'orders');
 */
export async function recordedPartitionCount(
  connection: ChannelModel,
  names: Names,
  topic: string,
): Promise<number | undefined> {
  const queue = names.partitionCount(topic);
  const channel = await connection.createChannel();
  // The refusal arrives as the channel's close too; the declaration's rejection below says it.
  channel.on('error', () => undefined);
  try {
    await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-max-length': -1 } });
  } catch (error) {
    const text = String((error as Error)?.message ?? error);
    const recorded = RECORDED.exec(text)?.[1];
    if (recorded !== undefined) return Number(recorded);
    if (/invalid arg 'x-max-length'/.test(text)) return undefined;
    throw error;
  } finally {
    void closeWithin(channel);
  }
  throw new Error(`RabbitMQ accepted an x-max-length of -1 for the queue ${queue}`);
}
