import { renderTraceTree, traceTreeToJson } from '@factline/core';
import type { Command } from 'commander';
import { CliError } from '../cli-error.ts';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  databaseOptions,
  integerOption,
  notFound,
  withInspector,
} from './database-options.ts';

/** The most nodes a trace reads (`TraceOptions.limit`'s bound). */
const MAX_TRACE_NODES = 100_000;
const atLeastOne = integerOption('--limit', 1);
const traceLimit = (value: string): number => {
  const limit = atLeastOne(value);
  if (limit > MAX_TRACE_NODES) throw new CliError(`--limit must be at most ${MAX_TRACE_NODES}, got '${value}'`);
  return limit;
};

/** `factline trace <correlationId>`: the causal tree of one business operation. */
export function addTrace(program: Command, context: CliContext): void {
  databaseAction(
    databaseOptions(
      program
        .command('trace <correlationId>')
        .description('the events, messages, handlings and dead letters of one correlation id, as a tree')
        .option('--limit <n>', `most nodes shown, the earliest first (at most ${MAX_TRACE_NODES})`, traceLimit, 1000),
    ),
    async (flags: DatabaseFlags & { limit: number }, correlationId: string) => {
      const tree = await withInspector(flags, context, (i) => i.trace(correlationId, { limit: flags.limit }));
      if (!tree.found) return notFound(context, `nothing carries correlation id '${correlationId}'`);
      // Not JSON.stringify: it recurses, and a causal chain may be any number of levels deep.
      if (flags.json) return context.stdout(traceTreeToJson(tree, { indent: 2 }));
      context.stdout(renderTraceTree(tree).trimEnd());
    },
  );
}
