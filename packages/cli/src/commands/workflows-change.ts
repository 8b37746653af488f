import type { EventStore, SchemaRegistry } from '@factline/core';
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import { cancelInstance, retryInstance } from '../workflows/change-instance.ts';
import { unreadableRecordName, type WorkflowInstanceSummary } from '../workflows/instance-summary.ts';
import { loadWorkflow } from '../workflows/load-workflows.ts';
import { openWorkflowStore } from '../workflows/open-store.ts';
import { readInstance } from '../workflows/read-instances.ts';
import { registryFrom } from '../workflows/retry-registry.ts';
import { confirm } from './confirm.ts';
import type { CliContext } from './context.ts';
import { type DatabaseFlags, databaseAction, notFound, printJson, target, withInspector } from './database-options.ts';

interface RetryFlags extends DatabaseFlags {
  workflows?: string;
  registry?: string;
  yes?: boolean;
}

interface CancelFlags extends DatabaseFlags {
  reason?: string;
  yes?: boolean;
}

/**
 * The instance, or exit 1 with one line when it does not exist or is not in a
 * state `verb` applies to; a retry of one with a record that cannot be read is
 * a `CliError` (exit 2) naming it.
 */
async function instanceFor(
  flags: DatabaseFlags,
  context: CliContext,
  workflow: string,
  instanceId: string,
  verb: 'retry' | 'cancel',
): Promise<WorkflowInstanceSummary | undefined> {
  const found = await withInspector(flags, context, (inspector) => readInstance(inspector, workflow, instanceId));
  if (!found) {
    notFound(context, `no instance '${instanceId}' of workflow '${workflow}'`);
    return undefined;
  }
  const { state, streamId } = found.summary;
  const refused = verb === 'retry' ? state !== 'parked' : state === 'completed' || state === 'cancelled';
  if (refused) {
    notFound(context, `cannot ${verb} ${streamId}: it is ${state}${verb === 'retry' ? ', not parked' : ' already'}`);
    return undefined;
  }
  const { unreadable } = found.summary;
  if (verb === 'retry' && unreadable) {
    throw new CliError(
      `cannot retry ${streamId}: its ${unreadableRecordName(unreadable)} cannot be read: ${unreadable.problem}`,
    );
  }
  return found.summary;
}

async function withStore<T>(
  flags: DatabaseFlags,
  context: CliContext,
  work: (store: EventStore) => Promise<T>,
  schemas?: SchemaRegistry,
) {
  const { store, close } = await openWorkflowStore(target(flags, context), schemas);
  try {
    return await work(store);
  } finally {
    await close();
  }
}

/** `factline workflows retry|cancel`: through the handler's `parked` API, as the application would call it. */
export function addWorkflowChanges(workflows: Command, context: CliContext): void {
  databaseAction(
    workflows
      .command('retry <workflow> <instanceId>')
      .description("decide a parked instance's failed input again, then the inputs kept since (needs the definitions)")
      .option('--workflows <module>', "the application's module exporting its workflow definitions")
      .option('--registry <module>', "the application's schema registry (default, registry or schemas export)")
      .option('--yes', 'do not ask for confirmation')
      .option('--json', 'print JSON for scripts'),
    async (flags: RetryFlags, name: string, instanceId: string) => {
      if (flags.workflows === undefined) {
        throw new CliError(
          "retry runs the workflow's decide: give --workflows <module> exporting the application's definitions",
        );
      }
      const workflow = await loadWorkflow(flags.workflows, name, context.cwd);
      const schemas = flags.registry === undefined ? undefined : await registryFrom(flags.registry, context.cwd);
      const summary = await instanceFor(flags, context, name, instanceId, 'retry');
      if (!summary?.parked) return;
      const inputs = summary.parked.pending + 1;
      if (
        !(await confirm(context, `retry ${summary.streamId} (${inputs} input${inputs === 1 ? '' : 's'})`, flags.yes))
      ) {
        context.stderr('factline: nothing changed');
        context.exitCode = 1;
        return;
      }
      const outcome = await withStore(flags, context, (store) => retryInstance(store, workflow, instanceId), schemas);
      if (outcome === 'parked') context.exitCode = 1;
      if (flags.json) return printJson(context, { streamId: summary.streamId, outcome });
      if (outcome === 'resumed') context.stdout(`${summary.streamId} resumed`);
      else context.stderr(`factline: ${summary.streamId} parked again (see workflows show)`);
    },
  );

  databaseAction(
    workflows
      .command('cancel <workflow> <instanceId>')
      .description('end an instance (running or parked): its timers are dropped, later inputs ignored')
      .option('--reason <text>', 'recorded with the cancel')
      .option('--yes', 'do not ask for confirmation')
      .option('--json', 'print JSON for scripts'),
    async (flags: CancelFlags, name: string, instanceId: string) => {
      const summary = await instanceFor(flags, context, name, instanceId, 'cancel');
      if (!summary) return;
      if (!(await confirm(context, `cancel ${summary.streamId} (${summary.state})`, flags.yes))) {
        context.stderr('factline: nothing changed');
        context.exitCode = 1;
        return;
      }
      try {
        await withStore(flags, context, (store) => cancelInstance(store, name, instanceId, flags.reason));
      } catch (error) {
        if (!summary.unreadable) throw error;
        // The handler loads the instance to cancel it: a record it cannot read fails the load.
        const message = error instanceof Error ? error.message : String(error);
        throw new CliError(
          `cannot cancel ${summary.streamId}: ${message}; its ${unreadableRecordName(summary.unreadable)} cannot be read: ${summary.unreadable.problem}`,
          { cause: error },
        );
      }
      if (flags.json) return printJson(context, { streamId: summary.streamId, outcome: 'cancelled' });
      context.stdout(`${summary.streamId} cancelled`);
    },
  );
}
