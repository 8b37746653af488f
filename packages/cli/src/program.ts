import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { type CliContext, createCliContext } from './commands/context.ts';
import { addSchemaCheck } from './commands/schema-check.ts';
import { addSchemaSnapshot } from './commands/schema-snapshot.ts';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function createProgram(context: CliContext): Command {
  const program = new Command('factline')
    .description('Factline command line')
    .version(version)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => context.stdout(text.trimEnd()),
      writeErr: (text) => context.stderr(text.trimEnd()),
    });
  const schema = program.command('schema').description('event and message schemas: snapshot and breaking-change check');
  addSchemaSnapshot(schema, context);
  addSchemaCheck(schema, context);
  return program;
}

/**
 * Runs the command line on `argv` (without node and the script) and resolves
 * with its exit code: 0 fine, 1 a breaking change found, 2 a usage or load
 * error, printed as one line.
 *
 * @example
 * process.exitCode = await runCli(process.argv.slice(2));
 */
export async function runCli(
  argv: readonly string[],
  io: Pick<CliContext, 'cwd' | 'stdout' | 'stderr'> = {
    cwd: process.cwd(),
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
  },
): Promise<number> {
  const context = createCliContext(io);
  try {
    await createProgram(context).parseAsync([...argv], { from: 'user' });
    return context.exitCode;
  } catch (error) {
    // commander has printed its own usage error (or the help, exit code 0).
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    const message = error instanceof Error ? error.message : String(error);
    context.stderr(`factline: ${message.split('\n')[0]}`);
    return 2;
  }
}
