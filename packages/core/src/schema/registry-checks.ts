import type { ValidationIssue } from '../errors/index.ts';
import { describeValue } from '../options/check-options.ts';
import type { SchemaDefinition } from './define.ts';

const isStandardSchema = (value: unknown): boolean => {
  const props = (value as { '~standard'?: { version?: unknown; validate?: unknown } } | null)?.['~standard'];
  return typeof props === 'object' && props !== null && props.version === 1 && typeof props.validate === 'function';
};

/** Records the problems of one definition's upcasters: a missing step, a step at or past the current version. */
function checkUpcasters(definition: SchemaDefinition, path: string, issues: ValidationIssue[]): void {
  const { type, version } = definition;
  const upcasters = (definition.upcasters ?? {}) as Record<string, unknown>;
  for (const [key, upcaster] of Object.entries(upcasters)) {
    const from = Number(key);
    if (!Number.isSafeInteger(from) || from < 1) {
      issues.push({
        path: `${path}.upcasters.${key}`,
        message: `'${type}': an upcaster is keyed by the version it reads (an integer >= 1)`,
      });
    } else if (from >= version) {
      issues.push({
        path: `${path}.upcasters.${key}`,
        message: `'${type}': an upcaster reads version ${from}, which is not older than the current version ${version}`,
      });
    } else if (typeof upcaster !== 'function') {
      issues.push({
        path: `${path}.upcasters.${key}`,
        message: `'${type}': must be a function, got ${describeValue(upcaster)}`,
      });
    }
  }
  for (let from = 1; from < version; from++) {
    if (upcasters[from] === undefined) {
      issues.push({
        path: `${path}.upcasters`,
        message: `'${type}' is at version ${version}: the upcaster from version ${from} to ${from + 1} is missing`,
      });
    }
  }
}

/**
 * Every problem of a registry's definitions, so one `ValidationError` at
 * start lists them all: a definition not made by `defineEvent` or
 * `defineMessage`, a type used twice in one kind, a version that is not an
 * integer >= 1, a schema that is not a Standard Schema v1, a missing upcaster
 * step, an upcaster for the current version or later.
 */
export function checkDefinitions(definitions: unknown): ValidationIssue[] {
  if (!Array.isArray(definitions)) {
    return [
      {
        path: 'definitions',
        message: `must be an array of defineEvent/defineMessage results, got ${describeValue(definitions)}`,
      },
    ];
  }
  const issues: ValidationIssue[] = [];
  const seen = { event: new Set<string>(), message: new Set<string>() };
  definitions.forEach((definition: SchemaDefinition, i) => {
    const path = `definitions[${i}]`;
    if (definition?.kind !== 'event' && definition?.kind !== 'message') {
      issues.push({ path, message: `must be made by defineEvent or defineMessage, got ${describeValue(definition)}` });
      return;
    }
    const { type, version } = definition;
    if (typeof type !== 'string' || type.length === 0) {
      issues.push({ path: `${path}.type`, message: `must be a non-empty string, got ${describeValue(type)}` });
    } else if (seen[definition.kind].has(type)) {
      issues.push({ path: `${path}.type`, message: `${definition.kind} type '${type}' is defined twice` });
    } else {
      seen[definition.kind].add(type);
    }
    if (!Number.isSafeInteger(version) || version < 1) {
      issues.push({
        path: `${path}.version`,
        message: `'${type}': must be an integer >= 1, got ${describeValue(version)}`,
      });
    } else {
      checkUpcasters(definition, path, issues);
    }
    if (!isStandardSchema(definition.schema)) {
      issues.push({
        path: `${path}.schema`,
        message: `'${type}': must be a Standard Schema v1 (zod 4, valibot 1, arktype 2…), got ${describeValue(definition.schema)}`,
      });
    }
  });
  return issues;
}
