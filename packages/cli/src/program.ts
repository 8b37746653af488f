import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { Command, CommanderError } from 'commander';
import { type CliContext, type CliIo, createCliContext } from './commands/context.ts';
import { addDatabaseOptions } from './commands/database-options.ts';
import { addDeadLetterChanges } from './commands/dlq-change.ts';
import { addDeadLetterReads } from './commands/dlq-read.ts';
import { addEventsTail } from './commands/events-tail.ts';
import { addOutbox } from './commands/outbox.ts';
import { addProjections } from './commands/projections.ts';
import { addSchemaCheck } from './commands/schema-check.ts';
import { addSchemaSnapshot } from './commands/schema-snapshot.ts';
import { addStreams } from './commands/streams.ts';
import { addTrace } from './commands/trace.ts';
import { addUi } from './commands/ui.ts';
import { addWorkflowChanges } from './commands/workflows-change.ts';
import { addWorkflowReads } from './commands/workflows-read.ts';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function createProgram(context: CliContext): Command {
  const program = new Command('factline')
    .description('Factline command line')
    .version(version)
    .option('--verbose', 'print the stack of an error')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => context.stdout(text.trimEnd()),
      writeErr: (text) => context.stderr(text.trimEnd()),
    });
  addDatabaseOptions(program);
  addStreams(program, context);
  addEventsTail(program, context);
  addProjections(program, context);
  const dlq = program.command('dlq').description('dead letters: list, show, redrive, discard');
  addDeadLetterReads(dlq, context);
  addDeadLetterChanges(dlq, context);
  addOutbox(program, context);
  addTrace(program, context);
  addUi(program, context);
  const schema = program.command('schema').description('event and message schemas: snapshot and breaking-change check');
  addSchemaSnapshot(schema, context);
  addSchemaCheck(schema, context);
  const workflows = program.command('workflows').description('workflow instances: list, show, retry, cancel');
  addWorkflowReads(workflows, context);
  addWorkflowChanges(workflows, context);
  return program;
}

/** The terminal's streams, environment and Ctrl-C, for the bin. */
function processIo(): CliIo {
  const interrupt = new AbortController();
  let followed = false;
  process.once('SIGINT', () => {
    interrupt.abort();
    // A command that does not follow Ctrl-C (a read waiting on a lock, a module that hangs on load) ends now.
    if (!followed) process.exit(130);
  });
  // Output piped into `head` that closed early: the reader has what it wanted.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
  return {
    cwd: process.cwd(),
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
    env: process.env,
    interactive: process.stdin.isTTY === true && process.stderr.isTTY === true,
    async ask(question) {
      const terminal = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await terminal.question(question);
      } finally {
        terminal.close();
      }
    },
    signal: interrupt.signal,
    followInterrupt: () => {
      followed = true;
    },
  };
}

/**
 * Runs the command line on `argv` (without node and the script) and resolves
 * with its exit code: 0 fine, 1 not found or a check failed (a breaking
 * change), 2 a usage, connection or load error, printed as one line (with
 * its stack under `--verbose`).
 *
 * @example
 * process.exitCode = await runCli(process.argv.slice(2));
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const context = createCliContext(io);
  try {
    await createProgram(context).parseAsync([...argv], { from: 'user' });
    return context.exitCode;
  } catch (error) {
    // commander has printed its own usage error (or the help, exit code 0).
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    const message = error instanceof Error ? error.message : String(error);
    context.stderr(`factline: ${message.split('\n')[0]}`);
    if (argv.includes('--verbose') && error instanceof Error && error.stack) context.stderr(error.stack);
    return 2;
  }
}
