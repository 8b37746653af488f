import { createSchemaRegistry, type EventStore, type SchemaDefinition, type SchemaRegistry } from '@factline/core';
import { CliError } from '../cli-error.ts';
import { loadRegistry } from '../load-registry.ts';

/** The application's registry from `--registry`: a registry, or its definitions made into one. */
export async function registryFrom(modulePath: string, cwd: string): Promise<SchemaRegistry> {
  const source = await loadRegistry(modulePath, cwd);
  const registry = source as Partial<SchemaRegistry>;
  if (typeof registry.decode === 'function' && typeof registry.definition === 'function')
    return source as SchemaRegistry;
  return createSchemaRegistry([...(source as Iterable<SchemaDefinition>)]);
}

/**
 * Without the registry, a retry would decide inputs recorded at a schema version (by an application whose store
 * has a registry) as they were recorded, where the application upcasts them: refused, naming them.
 */
export async function refuseVersionedInputs(store: EventStore, streamId: string): Promise<void> {
  const { events } = await store.readStream(streamId);
  const versioned = new Set<string>();
  type Recorded = { message?: { type?: unknown }; schema?: { version?: unknown } };
  for (const event of events) {
    const data = (event.data ?? {}) as Recorded & { input?: Recorded };
    // The inputs handled, the one the instance parked on, and those kept since for the retry.
    const recorded =
      event.type === '$workflow.parked'
        ? data.input
        : event.type === '$workflow.input' || event.type === '$workflow.deferred'
          ? data
          : undefined;
    if (recorded?.schema !== undefined) versioned.add(`${recorded.message?.type} v${recorded.schema.version}`);
  }
  if (versioned.size === 0) return;
  throw new CliError(
    `${streamId} recorded its inputs with their schema versions (${[...versioned].sort().join(', ')}): give --registry <module> with the application's schema registry, so that the retry decides them upcast as the application does`,
  );
}
