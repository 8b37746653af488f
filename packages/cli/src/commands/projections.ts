import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { type DatabaseFlags, databaseAction, databaseOptions, printJson, withInspector } from './database-options.ts';
import { formatAge, formatTable } from './table.ts';

/** `factline projections status`: each projection's checkpoint against the log's head. */
export function addProjections(program: Command, context: CliContext): void {
  const projections = program.command('projections').description('async projections and their checkpoints');
  databaseAction(
    databaseOptions(
      projections
        .command('status')
        .description("each projection's checkpoint, lag behind the log's head, live version and parked events"),
    ),
    async (flags: DatabaseFlags) => {
      const states = await withInspector(flags, context, (i) => i.projections());
      if (flags.json) return printJson(context, states);
      if (states.length === 0) return context.stdout('no projection has a checkpoint in this database');
      const now = Date.now();
      const rows = states.map((s) => [
        s.name,
        String(s.position),
        String(s.lag),
        `v${s.liveVersion}`,
        String(s.parked),
        `${formatAge(now - s.updatedAt.getTime())} ago`,
      ]);
      for (const line of formatTable(['projection', 'position', 'lag', 'live', 'parked', 'checkpointed'], rows)) {
        context.stdout(line);
      }
    },
  );
}
