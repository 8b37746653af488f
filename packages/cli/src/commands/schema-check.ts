import type { Command } from 'commander';
import { loadRegistry } from '../load-registry.ts';
import { checkSchemas } from '../schema/check.ts';
import { formatSchemaReport } from '../schema/format.ts';
import type { CliContext } from './context.ts';

interface CheckFlags {
  registry: string;
  dir: string;
  json?: boolean;
}

/** `factline schema check`: compares the registry with the snapshot; exit 1 on a breaking change. */
export function addSchemaCheck(schema: Command, context: CliContext): void {
  schema
    .command('check')
    .description('compare the registry with the snapshot files; fail on a breaking change')
    .requiredOption('--registry <module>', 'module exporting the schema registry (default, registry or schemas)')
    .option('--dir <dir>', 'folder of the snapshot files', 'schemas')
    .option('--json', 'print the report as JSON')
    .action(async (flags: CheckFlags) => {
      const registry = await loadRegistry(flags.registry, context.cwd);
      const report = checkSchemas(registry, context.resolve(flags.dir));
      context.stdout(flags.json ? JSON.stringify(report, null, 2) : formatSchemaReport(report));
      context.exitCode = report.ok ? 0 : 1;
    });
}
