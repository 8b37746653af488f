/** A migration component of a database: the version its tables are at, and the one this Factline brings them to. */
export interface SchemaComponentVersion {
  /** The component's name (`'event-store'`, `'transport'`, `'consumer'`, …). */
  component: string;
  /** 0: the database holds none of the component's tables. */
  version: number;
  /** The last version this Factline knows; opening a store of the component migrates `version` up to it. */
  latest: number;
}

/**
 * Each of an adapter's `components` (name and migration steps) with the
 * version `stored` for it (0 when none) and the last step's version.
 *
 * @example
 * componentVersions([['outbox', outboxMigrations]], new Map([['outbox', 1]])); // [{ component: 'outbox', version: 1, latest: 2 }]
 */
export function componentVersions(
  components: readonly (readonly [string, readonly { version: number }[]])[],
  stored: ReadonlyMap<string, number>,
): SchemaComponentVersion[] {
  return components.map(([component, migrations]) => ({
    component,
    version: stored.get(component) ?? 0,
    latest: migrations.reduce((max, m) => Math.max(max, m.version), 0),
  }));
}
