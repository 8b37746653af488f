import { ValidationError } from '../errors/index.ts';
import { checkOptions, describeValue } from '../options/check-options.ts';
import { buildTraceTree } from './build-trace.ts';
import type { TraceReader } from './trace-sources.ts';
import type { OperationTracer, TraceOptions, TraceTree } from './trace-tree.ts';

/** Nodes a tree keeps unless told: enough for a long operation, small enough to print. */
export const DEFAULT_TRACE_LIMIT = 1000;
/** The largest `limit` accepted: a bound on what one call reads into memory. */
export const MAX_TRACE_LIMIT = 100_000;

export interface OperationTracerSettings {
  /** Clock, to tell a queued message in delivery from one waiting. Default `Date.now`. */
  now?: () => number;
}

/**
 * An adapter's `traceOperation`, from its `TraceReader`: checks the input,
 * reads each source through its index (one row past the limit, to know when
 * the tree is cut), then the inbox marks of every id found or named as a
 * cause, and links them with `buildTraceTree`.
 *
 * @example
 * const tracer = createOperationTracer(sqliteTraceReader(db));
 * const tree = await tracer.traceOperation('checkout-1001', { limit: 200 });
 */
export function createOperationTracer(reader: TraceReader, settings: OperationTracerSettings = {}): OperationTracer {
  return {
    async traceOperation(correlationId: string, options?: TraceOptions): Promise<TraceTree> {
      const limit = checkTraceInput(correlationId, options);
      const read = limit + 1;
      const [events, outbox, queued, deadLetters] = await Promise.all([
        reader.events(correlationId, read),
        reader.outbox(correlationId, read),
        reader.queued(correlationId, read),
        reader.deadLetters(correlationId, read),
      ]);
      const ids = new Set<string>();
      const note = (id: string, metadata: { causationId?: string | undefined }) => {
        ids.add(id);
        if (metadata.causationId !== undefined) ids.add(metadata.causationId);
      };
      for (const e of events) note(e.id, e.metadata);
      for (const { message } of [...outbox, ...queued, ...deadLetters]) note(message.id, message.metadata);
      const handled = ids.size > 0 ? await reader.handled([...ids], read) : [];
      const cut = [events, outbox, queued, deadLetters, handled].some((rows) => rows.length > limit);
      return buildTraceTree(
        correlationId,
        {
          events: events.slice(0, limit),
          outbox: outbox.slice(0, limit),
          queued: queued.slice(0, limit),
          deadLetters: deadLetters.slice(0, limit),
          handled: handled.slice(0, limit),
        },
        { limit, truncated: cut, ...(settings.now ? { now: settings.now } : {}) },
      );
    },
  };
}

/** The limit a call asks for, after checking the correlation id and the options. */
export function checkTraceInput(correlationId: unknown, options: TraceOptions | undefined): number {
  if (typeof correlationId !== 'string' || correlationId.length === 0) {
    throw new ValidationError({
      path: 'correlationId',
      message: `must be a non-empty string, got ${describeValue(correlationId)}`,
    });
  }
  checkOptions(
    options,
    {
      limit: (value) =>
        typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_TRACE_LIMIT
          ? undefined
          : `must be an integer from 1 to ${MAX_TRACE_LIMIT}, got ${describeValue(value)}`,
    },
    'traceOperation',
  );
  return options?.limit ?? DEFAULT_TRACE_LIMIT;
}
