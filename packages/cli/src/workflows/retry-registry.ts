import { createSchemaRegistry, type SchemaDefinition, type SchemaRegistry } from '@factline/core';
import { CliError } from '../cli-error.ts';
import { loadRegistry } from '../load-registry.ts';

/**
 * The application's registry from `--registry`, for a store that upcasts as
 * the application's does: a registry as it is, or a registry made of the
 * definitions (an array of them, or an object with `definitions()`).
 *
 * @example
 * const schemas = await registryFrom('src/schemas.ts', process.cwd());
 */
export async function registryFrom(modulePath: string, cwd: string): Promise<SchemaRegistry> {
  const source = await loadRegistry(modulePath, cwd);
  const registry = source as Partial<SchemaRegistry> & { definitions?: () => Iterable<SchemaDefinition> };
  if (typeof registry.decode === 'function' && typeof registry.definition === 'function') {
    return source as SchemaRegistry;
  }
  const definitions =
    typeof registry.definitions === 'function' ? registry.definitions() : (source as Iterable<SchemaDefinition>);
  try {
    return createSchemaRegistry([...definitions]);
  } catch (error) {
    throw new CliError(
      `${modulePath}: its schema definitions make no registry: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
