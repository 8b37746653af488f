/**
 * The snapshot as files in the user's repository: one per type and version,
 * `<dir>/events/OrderPlaced.v2.json`, keys sorted and a trailing newline so a
 * change reads as a small diff in review.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ValidationError, type ValidationIssue } from '@factline/core';
import { isObject } from './compare/branches.ts';

export type SchemaKind = 'event' | 'message';

/** One stored snapshot file, parsed. */
export interface SnapshotFile {
  kind: SchemaKind;
  type: string;
  version: number;
  schema: Record<string, unknown>;
  /** Its path relative to the snapshot folder, `events/OrderPlaced.v2.json`. */
  file: string;
}

/** The folder of each kind's snapshot files under the snapshot folder. */
export const folders: Record<SchemaKind, string> = { event: 'events', message: 'messages' };

/** The file of one type at one version, relative to the snapshot folder; the type name is escaped for a file name. */
export function snapshotFileName(kind: SchemaKind, type: string, version: number): string {
  return `${folders[kind]}/${encodeURIComponent(type)}.v${version}.json`;
}

/** Sorts every object's keys, and `required` lists, so the same schema always reads the same. */
function sortKeys(value: unknown, key?: string): unknown {
  if (Array.isArray(value)) {
    const items = value.map((item) => sortKeys(item));
    return key === 'required' && items.every((i) => typeof i === 'string') ? [...items].sort() : items;
  }
  if (!isObject(value)) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .filter((k) => value[k] !== undefined)
      .map((k) => [k, sortKeys(value[k], k)]),
  );
}

/** The text of a snapshot file: sorted keys, two-space indent, trailing newline. */
export function snapshotFileText(kind: SchemaKind, type: string, version: number, schema: unknown): string {
  return `${JSON.stringify(sortKeys({ kind, type, version, schema }), null, 2)}\n`;
}

/** A schema as it reads back from its file (sorted, through JSON), to compare with one read from disk. */
export function asStored(schema: unknown): Record<string, unknown> {
  return sortKeys(JSON.parse(JSON.stringify(schema))) as Record<string, unknown>;
}

function readOne(dir: string, kind: SchemaKind, name: string, issues: ValidationIssue[]): SnapshotFile | undefined {
  const file = `${folders[kind]}/${name}`;
  const match = /^(.+)\.v([1-9]\d*)\.json$/.exec(name);
  if (!match) {
    issues.push({ path: file, message: 'is not named <type>.v<version>.json' });
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  } catch (error) {
    issues.push({ path: file, message: `is not valid JSON: ${(error as Error).message}` });
    return undefined;
  }
  const type = decodeURIComponent(match[1] as string);
  const version = Number(match[2]);
  if (
    !isObject(parsed) ||
    parsed.kind !== kind ||
    parsed.type !== type ||
    parsed.version !== version ||
    !isObject(parsed.schema)
  ) {
    issues.push({ path: file, message: `must hold { kind: '${kind}', type: '${type}', version: ${version}, schema }` });
    return undefined;
  }
  return { kind, type, version, schema: parsed.schema, file };
}

/**
 * Reads every snapshot file under `dir`. Throws a `ValidationError` when the
 * folder is missing (a wrong `--dir` must not pass as "nothing to compare")
 * or a file is malformed, naming each.
 *
 * @example
 * const files = readSnapshotFiles('schemas'); // [{ kind: 'event', type: 'OrderPlaced', version: 2, ... }]
 */
export function readSnapshotFiles(dir: string): SnapshotFile[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ValidationError({
      path: dir,
      message: 'is not a schema snapshot folder: write one first (factline schema snapshot)',
    });
  }
  const issues: ValidationIssue[] = [];
  const files: SnapshotFile[] = [];
  for (const kind of ['event', 'message'] as const) {
    const folder = join(dir, folders[kind]);
    if (!existsSync(folder)) continue;
    for (const name of readdirSync(folder).sort()) {
      if (name.startsWith('.')) continue;
      const file = readOne(dir, kind, name, issues);
      if (file) files.push(file);
    }
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return files;
}
