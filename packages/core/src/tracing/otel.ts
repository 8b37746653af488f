import { createRequire } from 'node:module';
import type * as Api from '@opentelemetry/api';

/**
 * The one door to `@opentelemetry/api`, an optional peer dependency: loaded
 * once, synchronously, when core loads; absent, every instrumented path
 * checks one module constant and runs the plain work (no span, no allocation).
 * Its globals (`Symbol.for('opentelemetry.js.api.1')`) are shared by every
 * copy of the API, so a provider registered through the ESM build is the one
 * seen here.
 */
export type OtelApi = typeof Api;

/** Loads the API, or `undefined` when it is not installed (or `load` fails). */
export function loadOtelApi(load: () => unknown = () => createRequire(import.meta.url)('@opentelemetry/api')) {
  try {
    const api = load() as OtelApi;
    return typeof api?.trace?.getTracer === 'function' ? api : undefined;
  } catch {
    return undefined;
  }
}

/** The API as installed, or `undefined`. */
export const otel: OtelApi | undefined = loadOtelApi();

const SCOPE = '@factline/core';
/** The provider the API reports while no SDK registered one: compared against, never called. */
const noopProvider = otel ? new otel.ProxyTracerProvider().getDelegate() : undefined;
let cachedTracer: Api.Tracer | undefined;

/**
 * The API's global registry (`Symbol.for('opentelemetry.js.api.1')`): its
 * `trace` slot holds the registered provider, and changes whenever one is
 * registered or the API is disabled.
 */
const registry = Symbol.for('opentelemetry.js.api.1');
/** The `trace` slot `tracingOn` last answered for, and its answer. */
let holder: { trace?: unknown } | undefined;
let seenSlot: unknown = registry;
let seenOn = false;

/**
 * True when a tracer provider (an SDK) is registered; a cheap check, no
 * allocation: the API is asked again only when the registry's `trace` slot
 * changed since the last call (a read of one global property per call).
 */
export function tracingOn(): boolean {
  if (otel === undefined) return false;
  // The registry object, once the API made it, stays for the process (unregistering empties a slot).
  holder ??= (globalThis as Record<symbol, { trace?: unknown } | undefined>)[registry];
  const slot = holder?.trace;
  if (slot === seenSlot) return seenOn;
  const provider = otel.trace.getTracerProvider();
  seenOn = !(provider instanceof otel.ProxyTracerProvider && provider.getDelegate() === noopProvider);
  seenSlot = slot;
  // A tracer made before is bound to the provider of its time: disabling the API replaces that provider.
  cachedTracer = undefined;
  return seenOn;
}

/** Factline's tracer while an SDK is registered, else `undefined` (the caller runs its plain path). */
export function activeTracer(): Api.Tracer | undefined {
  if (!tracingOn()) return undefined;
  // A ProxyTracer follows a provider registered after it was made; `tracingOn` drops it when the slot changes.
  cachedTracer ??= (otel as OtelApi).trace.getTracer(SCOPE);
  return cachedTracer;
}

/** Factline's meter (the API's no-op meter until an SDK registers a provider), or `undefined` without the API. */
export function factlineMeter(): Api.Meter | undefined {
  return otel?.metrics.getMeter(SCOPE);
}

/**
 * Runs `work` in a new span, made current for everything it awaits; a
 * failure is recorded on the span (status error) and rethrown; the span ends
 * when `work` settles.
 */
export async function inSpan<T>(
  tracer: Api.Tracer,
  name: string,
  options: Api.SpanOptions,
  work: (span: Api.Span) => Promise<T> | T,
  parent?: Api.Context,
): Promise<T> {
  const api = otel as OtelApi;
  const base = parent ?? api.context.active();
  const span = tracer.startSpan(name, options, base);
  try {
    return await api.context.with(api.trace.setSpan(base, span), () => work(span));
  } catch (error) {
    recordFailure(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** Marks `span` failed with `error` (an exception event and status error). */
export function recordFailure(span: Api.Span, error: unknown): void {
  const api = otel as OtelApi;
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}

/** The span current here while tracing is on, else `undefined`. */
export function currentSpan(): Api.Span | undefined {
  if (!tracingOn()) return undefined;
  return (otel as OtelApi).trace.getActiveSpan();
}
