/**
 * What `checkSchemas` reports. A problem is a change an old stored payload or
 * an old reader could not survive without a new version and an upcaster; a
 * notice is something to do that breaks nothing (a snapshot to write).
 */

/** The breaking changes the check knows. */
export type SchemaRule =
  /** A field the snapshot has is gone (removed or renamed). */
  | 'field-removed'
  /** A new required field without a default, or an optional field made required. */
  | 'required-added'
  /** Fewer values accepted: another type, number → integer, string → enum, a pattern or format added. */
  | 'type-narrowed'
  /** A member of a union (null of a nullable among them) is gone. */
  | 'union-member-removed'
  | 'enum-value-removed'
  | 'const-changed'
  /** A length, size or numeric bound raised or lowered against old values, or a new one. */
  | 'bounds-tightened'
  /** Extra fields allowed before (no `additionalProperties`, or `true`), refused or constrained now. */
  | 'additional-properties-tightened'
  /** A type with a snapshot is no longer in the registry. */
  | 'type-removed'
  /** The registry's current version is lower than a snapshot's. */
  | 'version-decreased';

/** What to do that breaks nothing. */
export type SchemaNoticeRule =
  /** A type without any snapshot yet: write one. */
  | 'new-type'
  /** A version without its snapshot (a bumped version): write it. */
  | 'needs-snapshot'
  /** A compatible change (a widening, a new optional field) the snapshot does not record yet. */
  | 'snapshot-outdated';

/** One finding, at a path inside the payload (`$` is the payload, `$.lines[].sku` a field of each line). */
export interface SchemaFinding<Rule extends string> {
  kind: 'event' | 'message';
  type: string;
  /** The version compared (the registry's, or the snapshot's for a removed type). */
  version: number;
  rule: Rule;
  path: string;
  message: string;
  /** The snapshot's side of the change (a schema, a bound, removed values), `null` when it had none. */
  before: unknown;
  /** The registry's side, `null` when it has none. */
  after: unknown;
}

export type SchemaProblem = SchemaFinding<SchemaRule>;
export type SchemaNotice = SchemaFinding<SchemaNoticeRule>;

export interface SchemaCheckReport {
  /** No breaking change: notices alone leave it true. */
  ok: boolean;
  problems: SchemaProblem[];
  notices: SchemaNotice[];
}

/** A change found between two schemas, before it is tied to its type and version. */
export interface SchemaChange {
  rule: SchemaRule;
  path: string;
  message: string;
  before: unknown;
  after: unknown;
}
