import { isFactlineError, ProjectionFailedError, ValidationError, type ValidationIssue } from '../errors/index.ts';
import { projectionIssues } from '../projections/projection-check.ts';
import type { Projection } from '../projections/types.ts';
import type { RecordedEvent } from './types.ts';

/**
 * Checks a store's `inlineProjections` option before anything is opened,
 * with the projection runner's check of a definition: a name of
 * `[a-z0-9_.-]` used once, `handles` listing event types, `handle`, and
 * `version`, `onFailure`, `effects`, `retire` as the runner takes them
 * (inline, a failing handler fails its append whatever `onFailure` says, and
 * `version` is not used). A `ValidationError` lists every issue, each at
 * `<where>[i].<field>`. Returns a copy, so later changes to the caller's
 * array do not reach the store.
 *
 * @example
 * const inline = checkInlineProjections(options.inlineProjections, 'getSqliteEventStore.inlineProjections');
 */
export function checkInlineProjections<P extends Projection<never>>(
  projections: readonly P[] | undefined,
  where = 'inlineProjections',
): P[] {
  const inline = [...(projections ?? [])];
  const issues: ValidationIssue[] = [];
  const names = new Set<string>();
  inline.forEach((projection, i) => {
    for (const issue of projectionIssues(projection, names)) {
      issues.push({ path: `${where}[${i}].${issue.path}`, message: issue.message });
    }
    if (typeof projection?.name === 'string') names.add(projection.name);
  });
  if (issues.length > 0) throw new ValidationError(issues);
  return inline;
}

/** The events of an append an inline projection is given: those of the types it handles (none: it is not called). */
export function inlineEvents(projection: Projection<never>, events: readonly RecordedEvent[]): RecordedEvent[] {
  return events.filter((event) => projection.handles.includes(event.type));
}

/**
 * What an inline projection's failure fails its append with: a Factline error
 * as it is (already typed and named, e.g. a handle refusing work), any other
 * error as a `ProjectionFailedError` naming the projection and the position
 * of the first event it was given, with the error as its cause. Without this
 * the adapter would report the user's error as a storage failure.
 */
export function inlineProjectionFailure(
  projection: Projection<never>,
  events: readonly RecordedEvent[],
  error: unknown,
): unknown {
  if (isFactlineError(error)) return error;
  return new ProjectionFailedError(projection.name, (events[0] as RecordedEvent).position, error);
}
