import type { ValidationIssue } from '../errors/index.ts';
import { describeValue } from '../options/check-options.ts';
import type { Projection } from './types.ts';

const NAME = /^[a-z0-9_.-]{1,100}$/;

/** The values of a projection's options that take one of a few (a misspelt one would act as the default). */
const CHOICES = [
  ['onFailure', ['stop', 'park']],
  ['effects', ['transactional', 'external']],
] as const;

/**
 * What is wrong with a projection's definition, each issue at its field
 * (`name`, `handles`, `handle`, `version`, `onFailure`, `effects`, `retire`):
 * the check the projection runner and a store's `inlineProjections` both
 * make. `taken`: the names of the projections given before it, so that a
 * name used twice is refused.
 *
 * @example
 * const issues = projectionIssues(projection, new Set(['carts']));
 */
export function projectionIssues(
  projection: Projection<never> | null | undefined,
  taken: ReadonlySet<string>,
): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (typeof projection?.name !== 'string' || !NAME.test(projection.name)) {
    issues.push({ path: 'name', message: 'must be 1–100 characters of a-z, 0-9, _, . and -' });
  } else if (taken.has(projection.name)) {
    issues.push({ path: 'name', message: `'${projection.name}' is used twice` });
  }
  if (!Array.isArray(projection?.handles) || projection.handles.length === 0) {
    issues.push({ path: 'handles', message: 'must list at least one event type' });
  }
  if (typeof projection?.handle !== 'function') issues.push({ path: 'handle', message: 'must be a function' });
  const version = projection?.version ?? 1;
  if (!Number.isSafeInteger(version) || version < 1) {
    issues.push({ path: 'version', message: 'must be a positive integer' });
  }
  for (const [option, values] of CHOICES) {
    const value = projection?.[option];
    if (value !== undefined && !(values as readonly unknown[]).includes(value)) {
      const allowed = values.map((v) => `'${v}'`).join(' or ');
      const name = typeof projection?.name === 'string' ? `projection '${projection.name}': ` : '';
      issues.push({ path: option, message: `${name}must be ${allowed}, got ${describeValue(value)}` });
    }
  }
  if (projection?.retire !== undefined && typeof projection.retire !== 'function') {
    issues.push({ path: 'retire', message: 'must be a function' });
  }
  return issues;
}
