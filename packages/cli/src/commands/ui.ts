import type { Command } from 'commander';
import { startUi } from '../ui/start-ui.ts';
import { loadWorkflow } from '../workflows/load-workflows.ts';
import { openWorkflowStore } from '../workflows/open-store.ts';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  integerOption,
  openDeadLetterOperator,
  openInspector,
  target,
} from './database-options.ts';

interface UiFlags extends DatabaseFlags {
  port: number;
  host: string;
  token?: string;
  workflows?: string;
}

/** `factline ui`: the local web dashboard, until Ctrl-C. */
export function addUi(program: Command, context: CliContext): void {
  databaseAction(
    program
      .command('ui')
      .description('the local web dashboard: streams, events, projections, dead letters, workflows, traces, outbox')
      .option('--port <n>', 'port to listen on (0: any free one)', integerOption('--port', 0), 4400)
      .option('--host <address>', 'address to listen on; other than loopback requires --token', '127.0.0.1')
      .option('--token <secret>', 'required on every request (open the page once with ?token=...)')
      .option('--workflows <module>', "the application's workflow definitions, for retrying parked instances"),
    async (flags: UiFlags) => {
      const modulePath = flags.workflows;
      const ui = await startUi({
        inspector: await openInspector(flags, context),
        openDeadLetterOperator: () => openDeadLetterOperator(flags, context),
        workflows: {
          openStore: () => openWorkflowStore(target(flags, context)),
          ...(modulePath === undefined ? {} : { loadWorkflow: (name) => loadWorkflow(modulePath, name, context.cwd) }),
        },
        host: flags.host,
        port: flags.port,
        ...(flags.token === undefined ? {} : { token: flags.token }),
        onError: (error) => context.stderr(`factline ui: ${error instanceof Error ? error.message : String(error)}`),
      });
      context.stdout(`factline ui on ${ui.url}${flags.token ? '?token=…' : ''} (Ctrl-C to stop)`);
      await new Promise<void>((resolve) => {
        if (context.signal.aborted) resolve();
        else context.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await ui.close();
    },
  );
}
