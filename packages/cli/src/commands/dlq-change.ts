import type { DeadLetter } from '@factline/core';
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import type { DeadLetterOperator } from '../inspect/inspector.ts';
import { confirm } from './confirm.ts';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  databaseOptions,
  printJson,
  withDeadLetterOperator,
} from './database-options.ts';
import { type DeadLetterFilterFlags, deadLetterFilter, deadLetterFilterOptions } from './dlq-read.ts';

interface ChangeFlags extends DatabaseFlags, DeadLetterFilterFlags {
  allMatching?: boolean;
  yes?: boolean;
}

/** The dead letters named by id (each must exist and be dead), or all matching the filter. */
async function select(operator: DeadLetterOperator, ids: readonly string[], flags: ChangeFlags) {
  const filtered = flags.group !== undefined || flags.type !== undefined || flags.topic !== undefined;
  if (ids.length > 0 && (flags.allMatching || filtered)) {
    throw new CliError('give dead letter ids or --all-matching with filters, not both');
  }
  if (ids.length === 0) {
    if (!flags.allMatching)
      throw new CliError('give dead letter ids, or --all-matching (with --group, --type, --topic)');
    return { records: await operator.list(deadLetterFilter({ ...flags, state: 'dead' })), missing: [] };
  }
  const records: DeadLetter[] = [];
  const missing: string[] = [];
  for (const id of new Set(ids)) {
    const record = await operator.get(id);
    if (record?.state === 'dead') records.push(record);
    else missing.push(record ? `${id} (already ${record.state})` : id);
  }
  return { records, missing };
}

function addChange(dlq: Command, context: CliContext, verb: 'redrive' | 'discard', description: string): void {
  databaseAction(
    databaseOptions(
      deadLetterFilterOptions(
        dlq
          .command(`${verb} [ids...]`)
          .description(description)
          .option('--all-matching', 'every dead letter matching the filters (all of them without a filter)')
          .option('--yes', 'do not ask for confirmation'),
      ),
    ),
    async (flags: ChangeFlags, ids: string[]) => {
      await withDeadLetterOperator(flags, context, async (operator) => {
        const { records, missing } = await select(operator, ids, flags);
        if (missing.length > 0) {
          context.stderr(`factline: no dead letter to ${verb}: ${missing.join(', ')}`);
          context.exitCode = 1;
          return;
        }
        if (verb === 'redrive') {
          // Every record checked before any is changed: a refusal leaves nothing half done.
          for (const record of records) {
            const reason = await operator.cannotRedrive(record);
            if (reason) throw new CliError(reason);
          }
        }
        const count = `${records.length} dead letter${records.length === 1 ? '' : 's'}`;
        if (records.length > 0 && !(await confirm(context, `${verb} ${count}`, flags.yes))) {
          context.stderr('factline: nothing changed');
          context.exitCode = 1;
          return;
        }
        const at = new Date();
        // Records changed since they were read (failed again, or changed by someone else) are left as they are.
        const changed: string[] = [];
        // A failure (the broker or the database gone) stops the run: what was done before it is still told.
        let failure: { id: string; error: unknown; notTried: string[] } | undefined;
        let tried = 0;
        for (const record of records) {
          tried += 1;
          try {
            const marked = verb === 'redrive' ? await operator.redrive(record, at) : await operator.discard(record);
            if (!marked) changed.push(record.id);
          } catch (error) {
            failure = { id: record.id, error, notTried: records.slice(tried).map((r) => r.id) };
            break;
          }
        }
        if (changed.length > 0) {
          const one = changed.length === 1;
          // Nothing was done for them: a redrive sent no message, a discard wrote nothing.
          const outcome =
            verb === 'redrive'
              ? one
                ? 'its message was not sent, its record left as it is'
                : 'their messages were not sent, their records left as they are'
              : `left as ${one ? 'it is' : 'they are'}, not discarded`;
          context.stderr(
            `factline: ${changed.length} dead letter${one ? '' : 's'} changed since read (failed again, or redriven or discarded elsewhere), ${outcome}: ${changed.join(', ')}`,
          );
          context.exitCode = 1;
        }
        const done = verb === 'redrive' ? 'redriven' : 'discarded';
        // Only the records marked; those left as they are go under `changed`.
        const marked = records.slice(0, failure ? tried - 1 : tried).filter((r) => !changed.includes(r.id));
        if (failure) {
          const why = failure.error instanceof Error ? failure.error.message : String(failure.error);
          const rest = failure.notTried.length > 0 ? `; not tried: ${failure.notTried.join(', ')}` : '';
          context.stderr(`factline: ${verb} of ${failure.id} failed, the run stopped there: ${why}${rest}`);
          context.exitCode = 2;
        }
        if (flags.json) {
          return printJson(context, {
            [done]: marked.map((r) => r.id),
            changed,
            ...(failure ? { failed: failure.id, notTried: failure.notTried } : {}),
          });
        }
        context.stdout(`${marked.length} dead letter${marked.length === 1 ? '' : 's'} ${done}`);
      });
    },
  );
}

/** `factline dlq redrive|discard`: by ids or by filter, after a confirmation. */
export function addDeadLetterChanges(dlq: Command, context: CliContext): void {
  addChange(
    dlq,
    context,
    'redrive',
    'deliver dead letters to their consumer group again (the SQL transports, or --transport: RabbitMQ, NATS, Redis)',
  );
  addChange(dlq, context, 'discard', 'mark dead letters discarded (kept for the record, never delivered)');
}
