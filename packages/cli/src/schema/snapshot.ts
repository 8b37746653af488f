import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FactlineError, isFactlineError } from '@factline/core';
import { checkOptions } from '@factline/core/adapter';
import { compareWithSnapshot } from './check.ts';
import { resolveDefinitions, type SchemaDefinitionsSource } from './definitions.ts';
import type { SchemaCheckReport } from './report.ts';
import { asStored, readSnapshotFiles, type SchemaKind, snapshotFileName, snapshotFileText } from './snapshot-files.ts';

/** One type's current version and its JSON Schema. */
export interface SchemaSnapshotEntry {
  version: number;
  schema: Record<string, unknown>;
}

/** The registry as JSON: by kind, then by type name (both sorted). */
export interface SchemaSnapshot {
  events: Record<string, SchemaSnapshotEntry>;
  messages: Record<string, SchemaSnapshotEntry>;
}

/**
 * The registry as JSON: each type's current version with its JSON Schema,
 * obtained through the Standard JSON Schema interface of its validator (or
 * the definition's own `jsonSchema`). Throws a `ValidationError` naming every
 * definition that has none.
 *
 * @example
 * const snapshot = schemaSnapshot(registry);
 * snapshot.events.OrderPlaced; // { version: 2, schema: { type: 'object', ... } }
 */
export function schemaSnapshot(definitions: SchemaDefinitionsSource): SchemaSnapshot {
  const snapshot: SchemaSnapshot = { events: {}, messages: {} };
  for (const definition of resolveDefinitions(definitions)) {
    const byType = definition.kind === 'event' ? snapshot.events : snapshot.messages;
    const known = byType[definition.type];
    if (known && known.version > definition.version) continue;
    byType[definition.type] = { version: definition.version, schema: asStored(definition.schema) };
  }
  return snapshot;
}

/** `writeSchemaSnapshot` refused to overwrite a snapshot with a breaking change; `report` says which. */
export class BreakingSchemaChangeError extends FactlineError {
  readonly report: SchemaCheckReport;
  constructor(report: SchemaCheckReport) {
    const count = report.problems.length;
    super('SCHEMA', `${count} breaking schema change${count === 1 ? '' : 's'}: the snapshot was not written`);
    this.report = report;
  }
}

/**
 * Whether an error is a refused snapshot write (true across two copies of the package).
 *
 * @example
 * try {
 *   writeSchemaSnapshot('schemas', registry);
 * } catch (error) {
 *   if (isBreakingSchemaChangeError(error)) console.error(formatSchemaReport(error.report));
 *   else throw error;
 * }
 */
export function isBreakingSchemaChangeError(error: unknown): error is BreakingSchemaChangeError {
  return isFactlineError(error) && error.code === 'SCHEMA' && 'report' in error && typeof error.report === 'object';
}

export interface WriteSchemaSnapshotOptions {
  /** Overwrite a version's snapshot even when the change breaks it (after a deliberate fix of a version never deployed). Default false. */
  force?: boolean;
}

export interface WriteSchemaSnapshotResult {
  /** Files created or changed, relative to the folder (`events/OrderPlaced.v2.json`). */
  written: string[];
  /** Files that already held the same schema. */
  unchanged: string[];
}

/**
 * Writes each type's JSON Schema into `dir`, one file per type and version
 * (`events/OrderPlaced.v2.json`), keys sorted, for the user's repository.
 * Files of older versions and of other types stay. It refuses (throws
 * `BreakingSchemaChangeError`, nothing written) to record a breaking change
 * over an existing version's file unless `force`: re-snapshotting must not be
 * a way around the check.
 *
 * @example
 * const { written } = writeSchemaSnapshot('schemas', registry);
 * // written: ['events/OrderPlaced.v2.json']
 */
export function writeSchemaSnapshot(
  dir: string,
  definitions: SchemaDefinitionsSource,
  options: WriteSchemaSnapshotOptions = {},
): WriteSchemaSnapshotResult {
  checkOptions(options, { force: 'boolean' }, 'writeSchemaSnapshot');
  const resolved = resolveDefinitions(definitions);
  if (existsSync(dir) && !options.force) {
    const report = compareWithSnapshot(resolved, readSnapshotFiles(dir));
    // A type gone from the registry is the check's to report; its old files are kept, not a reason to refuse.
    const breaking = report.problems.filter((p) => p.rule !== 'type-removed');
    if (breaking.length > 0) throw new BreakingSchemaChangeError({ ...report, ok: false, problems: breaking });
  }
  const result: WriteSchemaSnapshotResult = { written: [], unchanged: [] };
  for (const { kind, type, version, schema } of resolved) {
    const file = snapshotFileName(kind as SchemaKind, type, version);
    const path = join(dir, file);
    const text = snapshotFileText(kind, type, version, schema);
    if (existsSync(path) && readFileSync(path, 'utf8') === text) {
      result.unchanged.push(file);
      continue;
    }
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    result.written.push(file);
  }
  return result;
}
