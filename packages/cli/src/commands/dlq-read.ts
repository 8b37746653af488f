import type { DeadLetter } from '@factline/core';
import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  databaseOptions,
  notFound,
  printJson,
  withDeadLetterReader,
} from './database-options.ts';
import { formatTable } from './table.ts';

export interface DeadLetterFilterFlags {
  group?: string;
  type?: string;
  topic?: string;
  state?: DeadLetter['state'];
}

const states = new Set(['dead', 'redriven', 'discarded']);

/** Adds the filter flags `dlq ls`, `redrive` and `discard` share. */
export function deadLetterFilterOptions(command: Command): Command {
  return command
    .option('--group <name>', 'only dead letters of this consumer group')
    .option('--type <type>', 'only messages of this type')
    .option('--topic <topic>', 'only messages of this topic');
}

/** The store's filter for the flags given (`state` defaults to `'dead'`). */
export const deadLetterFilter = (flags: DeadLetterFilterFlags) => ({
  ...(flags.group === undefined ? {} : { consumer: flags.group }),
  ...(flags.type === undefined ? {} : { type: flags.type }),
  ...(flags.topic === undefined ? {} : { topic: flags.topic }),
  ...(flags.state === undefined ? {} : { state: flags.state }),
});

/** `factline dlq ls|show`: the dead letters, and one with its message and error. */
export function addDeadLetterReads(dlq: Command, context: CliContext): void {
  databaseAction(
    databaseOptions(
      deadLetterFilterOptions(dlq.command('ls').description('dead letters, oldest first')).option(
        '--state <state>',
        'dead (default), redriven or discarded',
        (value: string) => {
          if (!states.has(value)) throw new Error(`--state must be dead, redriven or discarded, got '${value}'`);
          return value;
        },
      ),
    ),
    async (flags: DatabaseFlags & DeadLetterFilterFlags) => {
      const records = await withDeadLetterReader(flags, context, (r) => r.list(deadLetterFilter(flags)));
      if (flags.json) return printJson(context, records);
      const rows = records.map((r) => [
        r.id,
        r.consumer,
        r.message.type,
        r.deadLetteredAt.toISOString(),
        `${r.error.type}: ${r.error.message}`.split('\n')[0] ?? '',
      ]);
      for (const line of formatTable(['id', 'group', 'type', 'dead-lettered', 'error'], rows)) context.stdout(line);
    },
  );

  databaseAction(
    databaseOptions(dlq.command('show <id>').description('one dead letter: its message, error and history')),
    async (flags: DatabaseFlags, id: string) => {
      const record = await withDeadLetterReader(flags, context, (r) => r.get(id));
      if (!record) return notFound(context, `dead letter '${id}' not found`);
      if (flags.json) return printJson(context, record);
      const lines = [
        `dead letter ${record.id} (${record.state})`,
        `group     ${record.consumer}   topic ${record.topic}`,
        `message   ${record.message.type} ${record.message.id}  key ${record.message.key}`,
        `reason    ${record.reason} after ${record.attempts} attempt${record.attempts === 1 ? '' : 's'}`,
        `failed    ${record.firstFailureAt.toISOString()} .. ${record.lastFailureAt.toISOString()}`,
        `redrives  ${record.redrives.map((d) => d.toISOString()).join(', ') || 'none'}`,
        `error     ${record.error.type}: ${record.error.message}`,
        `data      ${JSON.stringify(record.message.data)}`,
        `metadata  ${JSON.stringify(record.message.metadata)}`,
      ];
      for (const line of lines) context.stdout(line);
      if (record.error.stack) context.stdout(record.error.stack);
    },
  );
}
