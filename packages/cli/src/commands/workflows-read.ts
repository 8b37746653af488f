import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import type { StoredEvent } from '../inspect/inspector.ts';
import {
  describeUnreadable,
  elapsed,
  type InstanceState,
  instanceStates,
  isOverdue,
  recordProblem,
  type WorkflowInstanceSummary,
} from '../workflows/instance-summary.ts';
import { listInstances, readInstance } from '../workflows/read-instances.ts';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  databaseOptions,
  integerOption,
  notFound,
  printJson,
  withInspector,
} from './database-options.ts';
import { formatTable } from './table.ts';

interface ListFlags extends DatabaseFlags {
  name?: string;
  state?: InstanceState;
  limit: number;
  after?: string;
}

const stateOption = (value: string): InstanceState => {
  if (!instanceStates.includes(value as InstanceState)) {
    throw new CliError(`--state must be ${instanceStates.join(', ')}, got '${value}'`);
  }
  return value as InstanceState;
};

const lastInputCell = (s: WorkflowInstanceSummary) =>
  s.lastInput ? `${s.lastInput.type} ${s.lastInput.at.toISOString()}` : '-';

const timersCell = (s: WorkflowInstanceSummary) =>
  `${s.timers.length}${s.overdueTimers > 0 ? ` (${s.overdueTimers} overdue)` : ''}`;

/** The lines after `ls`'s table naming each overdue timer of the page, and what fires timers; none when none is. */
function overdueLines(instances: readonly WorkflowInstanceSummary[], now: number): string[] {
  const lines: string[] = [];
  for (const s of instances) {
    for (const t of s.timers) {
      if (!isOverdue(t, now)) continue;
      const ago = elapsed(now - t.dueAt.getTime());
      lines.push(`overdue: ${s.streamId} ${t.token} due ${t.dueAt.toISOString()} (${ago} ago): ${t.messageType}`);
    }
  }
  if (lines.length === 0) return lines;
  const count = lines.length === 1 ? '1 timer' : `${lines.length} timers`;
  lines.push(
    `${count} not fired a minute past ${lines.length === 1 ? 'its' : 'their'} due time: timers fire only while a timer runner runs (startSqliteWorkflowTimers, startPostgresWorkflowTimers) with the workflow's handler, and only those recorded by a store opened with the timer projection; a runner that cannot fire one tells its onError`,
  );
  return lines;
}

/** One recorded event of an instance on one line: what it is and what it says (as stored, with why, when it cannot be read). */
function recordLine(e: StoredEvent): string {
  const data = e.data as Record<string, unknown>;
  const kind = e.type.replace('$workflow.', '');
  const problem = recordProblem(e);
  if (problem !== undefined) {
    return `#${e.streamVersion}  ${e.recordedAt.toISOString()}  ${kind}  ${JSON.stringify(e.data)}  unreadable: ${problem}`;
  }
  const message = data.message as { type?: string; data?: unknown } | undefined;
  let detail = message ? `${message.type} ${JSON.stringify(message.data)}` : JSON.stringify(data);
  if (kind === 'timer-scheduled') {
    detail = `${data.token} due ${new Date(data.dueAt as number).toISOString()}: ${message?.type}`;
  } else if (kind === 'parked') {
    const { input, error } = data as { input: { message: { type: string } }; error: { name: string; message: string } };
    detail = `${input.message.type}: ${error.name}: ${error.message}`;
  }
  return `#${e.streamVersion}  ${e.recordedAt.toISOString()}  ${kind}  ${detail}`.trimEnd();
}

/** `factline workflows ls|show`: instances as their streams tell them, and one instance's records. */
export function addWorkflowReads(workflows: Command, context: CliContext): void {
  databaseAction(
    databaseOptions(
      workflows
        .command('ls')
        .description('workflow instances by id: state, version, last input, pending timers')
        .option('--name <workflow>', 'only instances of this workflow')
        .option('--state <state>', `only instances in this state (${instanceStates.join(', ')})`, stateOption)
        .option('--limit <n>', 'instances per page', integerOption('--limit', 1), 50)
        .option('--after <streamId>', 'start after this instance stream id (the last of the previous page)'),
    ),
    async (flags: ListFlags) => {
      const now = Date.now();
      const { instances, next } = await withInspector(flags, context, (inspector) =>
        listInstances(inspector, {
          now,
          limit: flags.limit,
          ...(flags.after === undefined ? {} : { after: flags.after }),
          ...(flags.name === undefined ? {} : { workflow: flags.name }),
          ...(flags.state === undefined ? {} : { state: flags.state }),
        }),
      );
      if (flags.json) return printJson(context, { instances, next: next ?? null });
      const rows = instances.map((s) => [
        s.workflow,
        s.instanceId,
        s.state,
        String(s.version),
        lastInputCell(s),
        timersCell(s),
      ]);
      const headers = ['workflow', 'instance', 'state', 'version', 'last input', 'timers'];
      for (const line of formatTable(headers, rows)) context.stdout(line);
      for (const s of instances) {
        if (s.unreadable) context.stdout(`unreadable: ${s.streamId} ${describeUnreadable(s.unreadable)}`);
      }
      for (const line of overdueLines(instances, now)) context.stdout(line);
      if (next !== undefined) context.stdout(`more: --after ${next}`);
    },
  );

  databaseAction(
    databaseOptions(
      workflows
        .command('show <workflow> <instanceId>')
        .description(
          "one instance: its recorded inputs and outputs, pending timers, and a park's error (its stack with --verbose)",
        ),
    ),
    async (flags: DatabaseFlags & { verbose?: boolean }, workflow: string, instanceId: string) => {
      const now = Date.now();
      const found = await withInspector(flags, context, (inspector) =>
        readInstance(inspector, workflow, instanceId, now),
      );
      if (!found) return notFound(context, `no instance '${instanceId}' of workflow '${workflow}'`);
      if (flags.json) return printJson(context, { ...found.summary, records: found.events });
      const { summary, events } = found;
      context.stdout(`${summary.streamId} (${summary.state}) version ${summary.version}`);
      for (const event of events) context.stdout(recordLine(event));
      const timers = summary.timers.map(
        (t) =>
          `${t.token} due ${t.dueAt.toISOString()}: ${t.messageType}${isOverdue(t, now) ? ` (overdue by ${elapsed(now - t.dueAt.getTime())})` : ''}`,
      );
      context.stdout(`timers  ${timers.join(', ') || 'none'}`);
      if (summary.parked) {
        const { input, error, pending, at } = summary.parked;
        context.stdout(`parked  since ${at.toISOString()} on ${input.type} ${input.id}`);
        context.stdout(`error   ${error.name}: ${error.message}`);
        context.stdout(`input   ${JSON.stringify(input.data)}`);
        context.stdout(`kept    ${pending} input${pending === 1 ? '' : 's'} received since, for the retry`);
        if (flags.verbose && error.stack) context.stdout(error.stack);
      }
      if (summary.unreadable) context.stdout(`unreadable  ${describeUnreadable(summary.unreadable)}`);
    },
  );
}
