import type { Command } from 'commander';
import { loadRegistry } from '../load-registry.ts';
import { formatSchemaReport } from '../schema/format.ts';
import { isBreakingSchemaChangeError, writeSchemaSnapshot } from '../schema/snapshot.ts';
import type { CliContext } from './context.ts';

interface SnapshotFlags {
  registry: string;
  dir: string;
  force?: boolean;
}

/** `factline schema snapshot`: writes the registry's JSON Schema files; exit 1 when that would record a breaking change. */
export function addSchemaSnapshot(schema: Command, context: CliContext): void {
  schema
    .command('snapshot')
    .description('write each event and message type as JSON Schema, one file per type and version')
    .requiredOption('--registry <module>', 'module exporting the schema registry (default, registry or schemas)')
    .option('--dir <dir>', 'folder of the snapshot files', 'schemas')
    .option('--force', 'overwrite a version whose change is breaking (only for a version never deployed)')
    .action(async (flags: SnapshotFlags) => {
      const registry = await loadRegistry(flags.registry, context.cwd);
      try {
        const { written, unchanged } = writeSchemaSnapshot(context.resolve(flags.dir), registry, {
          force: flags.force === true,
        });
        for (const file of written) context.stdout(`wrote ${file}`);
        context.stdout(`${written.length} written, ${unchanged.length} unchanged in ${flags.dir}`);
      } catch (error) {
        if (!isBreakingSchemaChangeError(error)) throw error;
        context.stdout(formatSchemaReport(error.report));
        context.stdout('Snapshot not written. Bump the version instead, or --force for a version never deployed.');
        context.exitCode = 1;
      }
    });
}
