import type { Attributes } from '@opentelemetry/api';
import { currentMessageContext } from '../messaging/context.ts';
import type { EventStore, RecordedEvent } from '../store/types.ts';
import { streamCategory } from '../store/validation.ts';
import { sharedIdAttributes } from './messaging-spans.ts';
import { factlineInstruments } from './metrics.ts';
import { activeTracer, inSpan } from './otel.ts';

/** The correlation and causation ids of an append: the first event's metadata, else the handled message's (as the store stamps them). */
function appendIds(events: unknown): Attributes {
  const attributes: Attributes = {};
  const context = currentMessageContext();
  const first = Array.isArray(events) ? (events[0] as { metadata?: Record<string, unknown> } | undefined) : undefined;
  const correlation = first?.metadata?.correlationId ?? context?.correlationId;
  const causation = first?.metadata?.causationId ?? context?.messageId;
  if (typeof correlation === 'string') attributes['factline.correlation_id'] = correlation;
  if (typeof causation === 'string') attributes['factline.causation_id'] = causation;
  return attributes;
}

/**
 * The ids the events were stored with, when they share them: an append
 * outside any handler with no correlation id stores the event's own id as
 * its correlation id, known only once it is stored.
 */
function storedIds(events: readonly RecordedEvent[] | undefined): Attributes {
  return events === undefined || events.length === 0 ? {} : sharedIdAttributes(events);
}

/**
 * Makes `store.append` traced and measured: an `append {category}` span
 * (current while the events are prepared, so each event names it as its
 * producer in `metadata.traceparent`) and the `factline.append.duration`
 * histogram. While neither a tracer nor a meter provider is registered the
 * append is called as it is. The store factories apply it to the store they
 * return, once.
 *
 * @example
 * return instrumentEventStore(store, 'sqlite');
 */
export function instrumentEventStore<S extends EventStore>(store: S, system: string): S {
  const append = store.append.bind(store) as EventStore['append'];
  const measured = { 'db.system.name': system };
  const timed = (streamId: string, events: unknown, options: unknown) => {
    const instruments = factlineInstruments();
    if (instruments === undefined) return append(streamId, events as never, options as never);
    const started = performance.now();
    return append(streamId, events as never, options as never).finally(() => {
      instruments.appendDuration.record((performance.now() - started) / 1000, measured);
    });
  };
  const traced: EventStore['append'] = (streamId, events, options) => {
    const tracer = activeTracer();
    if (tracer === undefined) return timed(streamId, events, options);
    const attributes: Attributes = {
      'db.system.name': system,
      'db.operation.name': 'append',
      'factline.stream.id': streamId,
      'messaging.batch.message_count': Array.isArray(events) ? events.length : 0,
      ...appendIds(events),
    };
    const name = typeof streamId === 'string' ? `append ${streamCategory(streamId)}` : 'append';
    return inSpan(tracer, name, { attributes }, async (span) => {
      const result = await timed(streamId, events, options);
      span.setAttributes({
        'factline.stream.version': result.version,
        'factline.position': result.position,
        ...storedIds(result.events),
      });
      return result;
    });
  };
  store.append = traced as S['append'];
  return store;
}

/**
 * A `command {category}` span around one `handleCommand`: load, decide and
 * append (its `append` span inside), with the attempts it took.
 */
export function traceCommand<
  R extends { attempts: number; version: number; position: number; newEvents?: readonly RecordedEvent[] },
>(streamId: string, metadata: Record<string, unknown> | undefined, work: () => Promise<R>): Promise<R> {
  const tracer = activeTracer();
  if (tracer === undefined) return work();
  const attributes: Attributes = {
    'factline.stream.id': streamId,
    ...appendIds(metadata === undefined ? undefined : [{ metadata }]),
  };
  const name = typeof streamId === 'string' ? `command ${streamCategory(streamId)}` : 'command';
  return inSpan(tracer, name, { attributes }, async (span) => {
    const result = await work();
    span.setAttributes({
      'factline.attempt': result.attempts,
      'factline.stream.version': result.version,
      'factline.position': result.position,
      ...storedIds(result.newEvents),
    });
    return result;
  });
}
