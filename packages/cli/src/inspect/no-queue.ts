import type { DeadLetter } from '@factline/core';
import { CliError } from '../cli-error.ts';

/** The error for a dead letter whose group has no queue on the database's SQL transport. */
export const noQueue = (record: DeadLetter) =>
  new CliError(
    `cannot redrive ${record.id}: group '${record.consumer}' has no queue for topic '${record.topic}' on this database's SQL transport (on a broker, redrive through the application's consumer.deadLetters.redrive)`,
  );
