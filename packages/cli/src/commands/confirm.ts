import { CliError } from '../cli-error.ts';
import type { CliContext } from './context.ts';

/**
 * Asks the person at the terminal to confirm `what`; `--yes` skips the
 * question. Without a terminal and without `--yes` it refuses (a usage error,
 * exit 2): a script must say so explicitly.
 *
 * @example
 * if (!(await confirm(context, 'redrive 3 dead letters', flags.yes))) return;
 */
export async function confirm(context: CliContext, what: string, yes: boolean | undefined): Promise<boolean> {
  if (yes) return true;
  if (!context.interactive) throw new CliError(`refusing to ${what} without a terminal to confirm on: add --yes`);
  const answer = await context.ask(`${what}? [y/N] `);
  return /^y(es)?$/i.test(answer.trim());
}
