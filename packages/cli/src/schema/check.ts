import { ValidationError } from '@factline/core';
import { compareSchemas } from './compare/compare-schemas.ts';
import { type ResolvedDefinition, resolveDefinitions, type SchemaDefinitionsSource } from './definitions.ts';
import type { SchemaCheckReport, SchemaNotice, SchemaNoticeRule, SchemaProblem } from './report.ts';
import { asStored, folders, readSnapshotFiles, type SnapshotFile, snapshotFileName } from './snapshot-files.ts';

const keyOf = (kind: string, type: string) => `${kind}\u0000${type}`;

function groupBy<T extends { kind: string; type: string }>(items: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item.kind, item.type);
    groups.set(key, [...(groups.get(key) ?? []), item]);
  }
  return groups;
}

function notice(definition: ResolvedDefinition, rule: SchemaNoticeRule, message: string): SchemaNotice {
  const { kind, type, version } = definition;
  const file = snapshotFileName(kind, type, version);
  return { kind, type, version, rule, path: '$', message: `${message}: write ${file}`, before: null, after: null };
}

/** The problems and notices of one type: its registry versions against its snapshot files. */
function checkType(definitions: ResolvedDefinition[], files: SnapshotFile[], report: SchemaCheckReport) {
  const latestFile = Math.max(0, ...files.map((f) => f.version));
  const current = Math.max(...definitions.map((d) => d.version));
  const first = definitions[0] as ResolvedDefinition;
  if (current < latestFile) {
    report.problems.push({
      kind: first.kind,
      type: first.type,
      version: current,
      rule: 'version-decreased',
      path: '$',
      message: `the registry is at version ${current}, the snapshot already at ${latestFile}`,
      before: latestFile,
      after: current,
    });
  }
  for (const definition of definitions) {
    const stored = files.find((f) => f.version === definition.version);
    if (!stored) {
      // A bumped version may change anything: the registry holds the upcaster from the one before.
      if (files.length === 0) report.notices.push(notice(definition, 'new-type', 'a new type with no snapshot yet'));
      else report.notices.push(notice(definition, 'needs-snapshot', `version ${definition.version} has no snapshot`));
      continue;
    }
    const changes = compareSchemas(stored.schema, asStored(definition.schema));
    const { kind, type, version } = definition;
    for (const change of changes) report.problems.push({ kind, type, version, ...change });
    if (changes.length === 0 && JSON.stringify(stored.schema) !== JSON.stringify(asStored(definition.schema))) {
      report.notices.push(notice(definition, 'snapshot-outdated', 'a compatible change the snapshot does not record'));
    }
  }
}

/**
 * Compares resolved definitions with snapshot files; the core of
 * `checkSchemas`, shared with `writeSchemaSnapshot`, which refuses to record
 * a breaking change.
 */
export function compareWithSnapshot(definitions: ResolvedDefinition[], files: SnapshotFile[]): SchemaCheckReport {
  const report: SchemaCheckReport = { ok: true, problems: [], notices: [] };
  const registered = groupBy(definitions);
  const stored = groupBy(files);
  for (const [key, group] of registered) checkType(group, stored.get(key) ?? [], report);
  for (const [key, group] of stored) {
    if (registered.has(key)) continue;
    const latest = group.reduce((a, b) => (b.version > a.version ? b : a));
    const problem: SchemaProblem = {
      kind: latest.kind,
      type: latest.type,
      version: latest.version,
      rule: 'type-removed',
      path: '$',
      message: `${latest.kind} type '${latest.type}' has a snapshot but is not in the registry; stored ones could no longer be read`,
      before: latest.schema,
      after: null,
    };
    report.problems.push(problem);
  }
  report.ok = report.problems.length === 0;
  return report;
}

/**
 * Compares the registry with the snapshot files under `dir` and reports
 * every change an old stored payload or an old reader could not survive at
 * the same version. A version with no snapshot passes as a notice: a new
 * type, or a bumped version (the registry enforces its upcaster). Throws a
 * `ValidationError` when `dir` is not a snapshot folder, holds no snapshot
 * file, or a definition has no JSON Schema.
 *
 * @example
 * const report = checkSchemas(registry, 'schemas');
 * if (!report.ok) console.error(formatSchemaReport(report));
 */
export function checkSchemas(definitions: SchemaDefinitionsSource, dir: string): SchemaCheckReport {
  const resolved = resolveDefinitions(definitions);
  const files = readSnapshotFiles(dir);
  // A folder with no snapshot at all (`--dir src`, `.`, the snapshot's `events/` itself) would pass every
  // change as a new type: the gate must not open on a wrong folder.
  if (files.length === 0) {
    throw new ValidationError({
      path: dir,
      message: `holds no schema snapshot (no ${folders.event}/ or ${folders.message}/ file): write one first (factline schema snapshot), or give the folder that holds them`,
    });
  }
  return compareWithSnapshot(resolved, files);
}
