import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  databaseOptions,
  notFound,
  printJson,
  withInspector,
  withProjectionControl,
} from './database-options.ts';
import { addProjectionRebuild } from './projections-rebuild.ts';
import { formatAge, formatTable } from './table.ts';

/** `factline projections status|pause|resume`: checkpoints against the log's head; the pause flag. */
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
      // Ages as the database tells them (its clock wrote the checkpoints), not by this process's clock.
      const rows = states.map((s) => [
        s.paused ? `${s.name} (paused)` : s.name,
        String(s.position),
        String(s.lag),
        `v${s.liveVersion}`,
        String(s.parked),
        `${formatAge(s.checkpointAgeMs)} ago`,
      ]);
      for (const line of formatTable(['projection', 'position', 'lag', 'live', 'parked', 'checkpointed'], rows)) {
        context.stdout(line);
      }
    },
  );

  for (const [verb, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    databaseAction(
      databaseOptions(
        projections
          .command(`${verb} <name>`)
          .description(
            paused
              ? 'hold a projection: its running runners stop before their next batch, in every process'
              : 'let a paused projection go on from its checkpoint',
          ),
      ),
      async (flags: DatabaseFlags, name: string) => {
        const done = await withProjectionControl(flags, context, async (control) => {
          if (!(await control.exists(name))) return false;
          await control.setPaused(name, paused);
          return true;
        });
        if (!done) return notFound(context, `no projection '${name}' has a checkpoint in this database`);
        if (flags.json) return printJson(context, { projection: name, paused });
        context.stdout(`${name} ${paused ? 'paused' : 'resumed'}`);
      },
    );
  }
  addProjectionRebuild(projections, context);
}
