import type { Command } from 'commander';
import { notJsonProblem, type StoredEvent } from '../inspect/inspector.ts';
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
  limit: number;
  after?: string;
  category?: string;
}

interface ShowFlags extends DatabaseFlags {
  from: number;
  limit: number;
}

/** One event on one line (`events tail`, `streams show`): position, stream@version, type, data, and a row not JSON marked. */
export const eventLine = (e: StoredEvent) => {
  const problem = notJsonProblem(e);
  return `#${e.position}  ${e.streamId}@${e.streamVersion}  ${e.type} v${e.schemaVersion}  ${e.recordedAt.toISOString()}  ${JSON.stringify(e.data)}${problem === undefined ? '' : `  unreadable: ${problem}`}`;
};

/** `factline streams ls|show`: the streams of the store, and one stream's events. */
export function addStreams(program: Command, context: CliContext): void {
  const streams = program.command('streams').description('streams of the event store');
  databaseAction(
    databaseOptions(
      streams
        .command('ls')
        .description('list streams by id, a page at a time')
        .option('--limit <n>', 'streams per page', integerOption('--limit', 1), 50)
        .option('--after <streamId>', 'start after this stream id (the last of the previous page)')
        .option('--category <name>', 'only streams of this category (the id before its first -)'),
    ),
    async (flags: ListFlags) => {
      const page = await withInspector(flags, context, (i) =>
        i.listStreams({
          limit: flags.limit,
          ...(flags.after === undefined ? {} : { after: flags.after }),
          ...(flags.category === undefined ? {} : { category: flags.category }),
        }),
      );
      const next = page.length === flags.limit ? page.at(-1)?.streamId : undefined;
      if (flags.json) return printJson(context, { streams: page, next: next ?? null });
      const rows = page.map((s) => [s.streamId, s.category, String(s.version), s.lastRecordedAt.toISOString()]);
      for (const line of formatTable(['stream', 'category', 'version', 'last event'], rows)) context.stdout(line);
      if (next !== undefined) context.stdout(`more: --after ${next}`);
    },
  );

  databaseAction(
    databaseOptions(
      streams
        .command('show <streamId>')
        .description("a stream's events, in order")
        .option('--from <version>', 'first stream version shown', integerOption('--from', 1), 1)
        .option('--limit <n>', 'events shown at most', integerOption('--limit', 1), 100),
    ),
    async (flags: ShowFlags, streamId: string) => {
      const events = await withInspector(flags, context, (i) =>
        i.readStream(streamId, { from: flags.from, limit: flags.limit }),
      );
      if (!events) return notFound(context, `stream '${streamId}' not found`);
      if (flags.json) return printJson(context, { streamId, events });
      for (const event of events) context.stdout(eventLine(event));
    },
  );
}
