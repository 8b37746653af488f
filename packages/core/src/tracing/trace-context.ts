import type { Context, Link, SpanContext } from '@opentelemetry/api';
import { currentSpan, type OtelApi, otel } from './otel.ts';

/** The W3C trace context fields a message or an event carries in its metadata. */
export interface TraceContextFields {
  traceparent?: string;
  tracestate?: string;
}

/**
 * A `traceparent`: version 00 exactly; a later version (01–fe) is read by its first four fields, whatever
 * follows them, as W3C Trace Context asks of a parser that knows only 00.
 */
const TRACEPARENT =
  /^(?:00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})|(?!00|ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?)$/;

/** The `traceparent` (and `tracestate`) of `context`, as W3C Trace Context writes them. */
export function traceContextFields(context: SpanContext): TraceContextFields {
  const flags = (context.traceFlags & 0xff).toString(16).padStart(2, '0');
  const fields: TraceContextFields = { traceparent: `00-${context.traceId}-${context.spanId}-${flags}` };
  const state = context.traceState?.serialize();
  if (state) fields.tracestate = state;
  return fields;
}

/**
 * The remote span context a `traceparent` names, or `undefined` when absent, malformed, of version ff or all
 * zeros. A version after 00 is read by its first four fields.
 */
export function spanContextOf(fields: TraceContextFields | undefined): SpanContext | undefined {
  if (otel === undefined || typeof fields?.traceparent !== 'string') return undefined;
  const match = TRACEPARENT.exec(fields.traceparent);
  if (!match) return undefined;
  const context: SpanContext = {
    traceId: (match[1] ?? match[4]) as string,
    spanId: (match[2] ?? match[5]) as string,
    traceFlags: Number.parseInt((match[3] ?? match[6]) as string, 16),
    isRemote: true,
  };
  if (typeof fields.tracestate === 'string' && fields.tracestate.length > 0) {
    context.traceState = otel.createTraceState(fields.tracestate);
  }
  return otel.isSpanContextValid(context) ? context : undefined;
}

/**
 * Writes the current span's trace context into `metadata` unless it has a
 * `traceparent` already (a message re-sent keeps its producer). A no-op while
 * no tracer is registered or no span is current.
 */
export function injectTraceContext(metadata: TraceContextFields): void {
  if (metadata.traceparent !== undefined) return;
  const fields = currentTraceFields();
  if (fields === undefined) return;
  metadata.traceparent = fields.traceparent;
  if (fields.tracestate !== undefined) metadata.tracestate = fields.tracestate;
}

/** The current span's trace context fields, or `undefined` while no tracer is registered or no span is current. */
export function currentTraceFields(): TraceContextFields | undefined {
  const span = currentSpan();
  if (span === undefined) return undefined;
  const context = span.spanContext();
  return (otel as OtelApi).isSpanContextValid(context) ? traceContextFields(context) : undefined;
}

/** Most links one span carries (a large batch links its first messages only). */
export const MAX_LINKS = 128;

/** Links to the producers of `items` (their metadata's trace context), each with its correlation id. */
export function producerLinks(
  items: readonly { id: string; metadata?: TraceContextFields & { correlationId?: string } }[],
): Link[] {
  const links: Link[] = [];
  for (const item of items) {
    if (links.length >= MAX_LINKS) break;
    const context = spanContextOf(item.metadata);
    if (context === undefined) continue;
    const attributes: Record<string, string> = { 'messaging.message.id': item.id };
    const correlation = item.metadata?.correlationId;
    if (typeof correlation === 'string') attributes['factline.correlation_id'] = correlation;
    links.push({ context, attributes });
  }
  return links;
}

/** A context whose parent is the remote span `remote` (parent-child propagation). */
export function remoteParent(remote: SpanContext): Context {
  const api = otel as OtelApi;
  return api.trace.setSpanContext(api.ROOT_CONTEXT, remote);
}
