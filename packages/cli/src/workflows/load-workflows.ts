import type { Workflow } from '@factline/core';
import { CliError } from '../cli-error.ts';
import { importUserModule } from '../load-registry.ts';

const isWorkflow = (value: unknown): value is Workflow<unknown> =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as Workflow<unknown>).name === 'string' &&
  typeof (value as Workflow<unknown>).decide === 'function' &&
  typeof (value as Workflow<unknown>).evolve === 'function';

/**
 * Imports the application's module of workflow definitions and picks out the
 * one named `name`: any export that is a workflow (`defineWorkflow`'s result),
 * or an array of them, the default export included.
 *
 * @example
 * const shipping = await loadWorkflow('src/workflows.ts', 'shipping', process.cwd());
 */
export async function loadWorkflow(modulePath: string, name: string, cwd: string): Promise<Workflow<unknown>> {
  const module = await importUserModule(modulePath, '--workflows', cwd);
  const found: Workflow<unknown>[] = [];
  const inner = (typeof module.default === 'object' && module.default) || {};
  for (const value of [...Object.values(module), ...Object.values(inner)]) {
    for (const candidate of Array.isArray(value) ? value : [value]) if (isWorkflow(candidate)) found.push(candidate);
  }
  const workflow = found.find((w) => w.name === name);
  if (workflow) return workflow;
  const names = [...new Set(found.map((w) => w.name))];
  throw new CliError(
    `${modulePath} exports no workflow named '${name}' (${names.length > 0 ? `it has ${names.join(', ')}` : 'it exports no workflow definition'})`,
  );
}
