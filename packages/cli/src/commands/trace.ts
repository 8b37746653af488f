import { renderTraceTree, traceTreeToJson } from '@factline/core';
import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { type DatabaseFlags, databaseAction, databaseOptions, notFound, withInspector } from './database-options.ts';

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
      // Not JSON.stringify: it recurses, and a causal chain may be any number of levels deep.
      if (flags.json) return context.stdout(traceTreeToJson(tree, { indent: 2 }));
      context.stdout(renderTraceTree(tree).trimEnd());
    },
  );
}
