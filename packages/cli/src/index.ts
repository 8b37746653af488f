/**
 * `factline`: the command line, and the library its commands call. The schema
 * check writes a registry's event and message types as JSON Schema files kept
 * in the user's repository, and fails CI on a change that an old stored
 * payload or an old reader could not survive without a version bump.
 */

export { checkSchemas } from './schema/check.ts';
export type {
  SchemaDefinitionLike,
  SchemaDefinitionsSource,
  StandardJsonSchemaConverter,
  StandardSchemaLike,
} from './schema/definitions.ts';
export { formatSchemaReport } from './schema/format.ts';
export type {
  SchemaCheckReport,
  SchemaFinding,
  SchemaNotice,
  SchemaNoticeRule,
  SchemaProblem,
  SchemaRule,
} from './schema/report.ts';
export {
  BreakingSchemaChangeError,
  isBreakingSchemaChangeError,
  type SchemaSnapshot,
  type SchemaSnapshotEntry,
  schemaSnapshot,
  type WriteSchemaSnapshotOptions,
  type WriteSchemaSnapshotResult,
  writeSchemaSnapshot,
} from './schema/snapshot.ts';
