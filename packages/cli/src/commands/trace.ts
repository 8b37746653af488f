import { renderTraceTree } from '@factline/core';
import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  databaseOptions,
  notFound,
  printJson,
  withInspector,
} from './database-options.ts';

/** `factline trace <correlationId>`: the causal tree of one business operation. */
export function addTrace(program: Command, context: CliContext): void {
  databaseAction(
    databaseOptions(
      program
        .command('trace <correlationId>')
        .description('the events, messages, handlings and dead letters of one correlation id, as a tree'),
    ),
    async (flags: DatabaseFlags, correlationId: string) => {
      const tree = await withInspector(flags, context, (i) => i.trace(correlationId));
      if (!tree.found) return notFound(context, `nothing carries correlation id '${correlationId}'`);
      if (flags.json) return printJson(context, tree);
      context.stdout(renderTraceTree(tree).trimEnd());
    },
  );
}
