import { setTimeout as delay } from 'node:timers/promises';
import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  databaseOptions,
  integerOption,
  withInspector,
} from './database-options.ts';
import { eventLine } from './streams.ts';

interface TailFlags extends DatabaseFlags {
  from?: number;
  count?: number;
  intervalMs: number;
}

// Events read per query: a backlog is printed in pages of this size.
const PAGE = 500;

/** `factline events tail`: follows the global log live, from its end or a position. */
export function addEventsTail(program: Command, context: CliContext): void {
  const events = program.command('events').description('the global event log');
  databaseAction(
    databaseOptions(
      events
        .command('tail')
        .description('print events as they are appended, until Ctrl-C (or --count events)')
        .option(
          '--from <position>',
          'start at this log position (default: after the last event)',
          integerOption('--from', 1),
        )
        .option('--count <n>', 'stop after this many events', integerOption('--count', 1))
        .option('--interval-ms <ms>', 'how often to look for new events', integerOption('--interval-ms', 1), 100),
      // --json prints one JSON object a line (JSON Lines), for a pipe.
    ),
    async (flags: TailFlags) => {
      await withInspector(flags, context, async (inspector) => {
        let position = flags.from === undefined ? await inspector.headPosition() : flags.from - 1;
        let printed = 0;
        context.followInterrupt();
        const { signal } = context;
        while (!signal.aborted) {
          const page = await inspector.readAll(position, PAGE);
          for (const event of page) {
            context.stdout(flags.json ? JSON.stringify(event) : eventLine(event));
            position = event.position;
            printed += 1;
            if (printed === flags.count) return;
          }
          if (page.length < PAGE) await delay(flags.intervalMs, undefined, { signal }).catch(() => undefined);
        }
      });
    },
  );
}
