import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { ValidationIssue } from '../errors/index.ts';

/** `root` followed by a Standard Schema issue's path: `data.lines[2].price`. */
function issuePath(root: string, path: StandardSchemaV1.Issue['path']): string {
  let out = root;
  for (const segment of path ?? []) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    out += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  }
  return out;
}

/** A schema's issues as Factline's, each path under `root`, each message with `context` appended. */
export function toValidationIssues(
  issues: readonly StandardSchemaV1.Issue[],
  root: string,
  context = '',
): ValidationIssue[] {
  return issues.map((issue) => ({ path: issuePath(root, issue.path), message: `${issue.message}${context}` }));
}

/**
 * Runs a Standard Schema on `value`. Synchronous when the schema is (most
 * are); a promise only when the schema validates asynchronously.
 */
export function runSchema(
  schema: StandardSchemaV1,
  value: unknown,
): StandardSchemaV1.Result<unknown> | Promise<StandardSchemaV1.Result<unknown>> {
  return schema['~standard'].validate(value);
}

/** Whether `value` is a promise (or any thenable). */
export const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  typeof (value as { then?: unknown } | null)?.then === 'function';
