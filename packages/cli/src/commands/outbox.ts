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
      const status = await withInspector(flags, context, (i) => i.outboxStatus());
      const now = Date.now();
      const age = (at: Date | null) => (at ? now - at.getTime() : null);
      if (flags.json) {
        return printJson(context, {
          ...status,
          oldestAgeMs: age(status.oldestEnqueuedAt),
          topics: status.topics.map((t) => ({ ...t, oldestAgeMs: age(t.oldestEnqueuedAt) })),
        });
      }
      if (!status.present) return context.stdout('no outbox in this database');
      const oldest = status.oldestEnqueuedAt ? `, oldest ${formatAge(now - status.oldestEnqueuedAt.getTime())}` : '';
      context.stdout(`${status.waiting} waiting${oldest}`);
      if (status.topics.length === 0) return;
      const rows = status.topics.map((t) => [
        t.topic,
        String(t.waiting),
        formatAge(now - t.oldestEnqueuedAt.getTime()),
      ]);
      for (const line of formatTable(['topic', 'waiting', 'oldest'], rows)) context.stdout(line);
    },
  );
}
