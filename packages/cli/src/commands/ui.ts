import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import { startUi, type UiSource } from '../ui/start-ui.ts';
import type { WorkflowActions } from '../ui/workflow-routes.tsx';
import { loadWorkflow } from '../workflows/load-workflows.ts';
import { openWorkflowStore } from '../workflows/open-store.ts';
import { registryFrom } from '../workflows/retry-registry.ts';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  deadLetterTarget,
  integerOption,
  openDeadLetterOperator,
  openInspectorAt,
  openRedisDeadLetters,
  redriveTarget,
} from './database-options.ts';

interface UiFlags extends DatabaseFlags {
  port: number;
  host: string;
  token?: string;
  workflows?: string;
  registry?: string;
}

/**
 * What the dashboard reads where the flags point: a database (every page,
 * the workflow actions), or a Redis application's dead letters alone.
 */
async function openSource(flags: UiFlags, context: CliContext): Promise<UiSource & { workflows?: WorkflowActions }> {
  const where = deadLetterTarget(flags, context);
  // Refuses a --transport a redis:// --db cannot use, before anything is opened (as `dlq` does).
  redriveTarget(flags, context, where);
  if (where.kind === 'redis') {
    for (const [given, flag] of [
      [flags.workflows, '--workflows'],
      [flags.registry, '--registry'],
    ] as const) {
      if (given !== undefined) {
        throw new CliError(`${flag} needs a sqlite: or postgres:// --db: a Redis application keeps no workflows`);
      }
    }
    return { deadLetters: await openRedisDeadLetters(where, { reconnect: true }) };
  }
  const modulePath = flags.workflows;
  // Loaded once, before the server starts: a module that exports no registry is a usage error now, not at a retry.
  const schemas = flags.registry === undefined ? undefined : await registryFrom(flags.registry, context.cwd);
  return {
    inspector: await openInspectorAt(where),
    workflows: {
      openStore: () => openWorkflowStore(where, schemas),
      ...(modulePath === undefined ? {} : { loadWorkflow: (name) => loadWorkflow(modulePath, name, context.cwd) }),
    },
  };
}

/** `factline ui`: the local web dashboard, until Ctrl-C. */
export function addUi(program: Command, context: CliContext): void {
  databaseAction(
    program
      .command('ui')
      .description(
        'the local web dashboard: streams, events, projections, dead letters, workflows, traces, outbox (dead letters only on a redis:// --db)',
      )
      .option('--port <n>', 'port to listen on (0: any free one)', integerOption('--port', 0), 4400)
      .option('--host <address>', 'address to listen on; other than loopback requires --token', '127.0.0.1')
      .option('--token <secret>', 'required on every request (open the page once with ?token=...)')
      .option('--workflows <module>', "the application's workflow definitions, for retrying parked instances")
      .option(
        '--registry <module>',
        "the application's schema registry, for retrying instances whose inputs have versions",
      ),
    async (flags: UiFlags) => {
      const ui = await startUi({
        ...(await openSource(flags, context)),
        openDeadLetterOperator: () => openDeadLetterOperator(flags, context),
        host: flags.host,
        port: flags.port,
        ...(flags.token === undefined ? {} : { token: flags.token }),
        onError: (error) => context.stderr(`factline ui: ${error instanceof Error ? error.message : String(error)}`),
      });
      context.stdout(`factline ui on ${ui.url}${flags.token ? '?token=…' : ''} (Ctrl-C to stop)`);
      context.followInterrupt();
      await new Promise<void>((resolve) => {
        if (context.signal.aborted) resolve();
        else context.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await ui.close();
    },
  );
}
