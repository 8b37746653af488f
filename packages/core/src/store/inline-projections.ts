import { isFactlineError, ProjectionFailedError, ValidationError } from '../errors/index.ts';
import type { Projection } from '../projections/types.ts';
import type { RecordedEvent } from './types.ts';

/**
 * Checks a store's `inlineProjections` option before anything is opened:
 * each needs `handles` (event types) and `handle`. Returns a copy, so later
 * changes to the caller's array do not reach the store.
 */
export function checkInlineProjections<P extends Projection<never>>(projections: readonly P[] | undefined): P[] {
  const inline = [...(projections ?? [])];
  for (const projection of inline) {
    if (typeof projection?.handle !== 'function' || !Array.isArray(projection.handles)) {
      throw new ValidationError({ path: 'inlineProjections', message: 'each needs handles (event types) and handle' });
    }
  }
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
