import type { DeadLetter } from '@factline/core';
import { CliError } from '../cli-error.ts';

/** Why a dead letter cannot be redriven through the database: its group has no queue on the SQL transport. */
export const noQueueMessage = (record: DeadLetter): string =>
  `cannot redrive ${record.id}: group '${record.consumer}' has no queue for topic '${record.topic}' on this database's SQL transport (on a broker, redrive through the application's consumer.deadLetters.redrive)`;

/** The same, as the error a redrive throws. */
export const noQueue = (record: DeadLetter) => new CliError(noQueueMessage(record));
