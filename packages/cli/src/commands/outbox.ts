import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { type DatabaseFlags, databaseAction, databaseOptions, printJson, withInspector } from './database-options.ts';
import { formatAge, formatTable } from './table.ts';

/** `factline outbox status`: entries waiting for the relay, and how old the oldest is. */
export function addOutbox(program: Command, context: CliContext): void {
  const outbox = program.command('outbox').description('the transactional outbox');
  databaseAction(
    databaseOptions(
      outbox.command('status').description('entries waiting to be published, per topic, with the oldest age'),
    ),
    async (flags: DatabaseFlags) => {
      // Ages as the database tells them (its clock wrote the enqueue times), not by this process's clock.
      const status = await withInspector(flags, context, (i) => i.outboxStatus());
      if (flags.json) return printJson(context, status);
      if (!status.present) return context.stdout('no outbox in this database');
      const oldest = status.oldestAgeMs === null ? '' : `, oldest ${formatAge(status.oldestAgeMs)}`;
      context.stdout(`${status.waiting} waiting${oldest}`);
      if (status.topics.length === 0) return;
      const rows = status.topics.map((t) => [t.topic, String(t.waiting), formatAge(t.oldestAgeMs)]);
      for (const line of formatTable(['topic', 'waiting', 'oldest'], rows)) context.stdout(line);
    },
  );
}
