import type { Attributes, Link, Span } from '@opentelemetry/api';
import type { Message } from '../messaging/message.ts';
import { activeTracer, currentSpan, inSpan, type OtelApi, otel, recordFailure } from './otel.ts';
import type { ProducerSpanRelation } from './span-relation.ts';
import {
  producerLinks,
  remoteParent,
  spanContextOf,
  type TraceContextFields,
  traceContextFields,
} from './trace-context.ts';

/** How a delivery ended, as its process span's `factline.settle` says. */
export type SettleOutcome = 'ack' | 'duplicate' | 'dead-letter' | 'discard' | 'release';

/** A transport's `messaging.system`: its `system`, else `'factline'` (a transport that names none). */
export const systemOf = (transport: { system?: string }) => transport.system ?? 'factline';

const numberHeader = (value: string | undefined) => (value === undefined ? undefined : Number(value));

/** `messaging.message.id` and the `factline.*` attributes of one message. */
export function messageAttributes(message: Message): Attributes {
  const attributes: Attributes = { 'messaging.message.id': message.id };
  const { correlationId, causationId } = message.metadata;
  if (typeof correlationId === 'string') attributes['factline.correlation_id'] = correlationId;
  if (typeof causationId === 'string') attributes['factline.causation_id'] = causationId;
  const stream = message.headers['factline-stream-id'];
  if (stream !== undefined) {
    attributes['factline.stream.id'] = stream;
    attributes['factline.stream.version'] = numberHeader(message.headers['factline-stream-version']);
    attributes['factline.position'] = numberHeader(message.headers['factline-position']);
  }
  return attributes;
}

/** The metadata id `key` shared by every item, if they share one. */
function shared(
  items: readonly { metadata?: { correlationId?: unknown; causationId?: unknown } }[],
  key: 'correlationId' | 'causationId',
): string | undefined {
  const first = items[0]?.metadata?.[key];
  if (typeof first !== 'string') return undefined;
  return items.every((item) => item.metadata?.[key] === first) ? first : undefined;
}

/** A batch's `factline.correlation_id` and `factline.causation_id`: each when every item shares it. */
export function sharedIdAttributes(
  items: readonly { metadata?: { correlationId?: unknown; causationId?: unknown } }[],
): Attributes {
  const attributes: Attributes = {};
  const correlation = shared(items, 'correlationId');
  if (correlation !== undefined) attributes['factline.correlation_id'] = correlation;
  const causation = shared(items, 'causationId');
  if (causation !== undefined) attributes['factline.causation_id'] = causation;
  return attributes;
}

/**
 * A `create` span for a message built while a span is current (inside a
 * handler, a request): its context goes into the message's metadata, so its
 * consumers link to it. Nothing while no tracer is registered, no span is
 * current, or the message names its producer already.
 */
export function traceCreate(
  metadata: TraceContextFields & { correlationId?: string; causationId?: string },
  id: string,
): void {
  if (metadata.traceparent !== undefined) return;
  const tracer = activeTracer();
  if (tracer === undefined || currentSpan() === undefined) return;
  const attributes: Attributes = {
    'messaging.operation.type': 'create',
    'messaging.operation.name': 'create',
    'messaging.message.id': id,
  };
  if (metadata.correlationId !== undefined) attributes['factline.correlation_id'] = metadata.correlationId;
  if (metadata.causationId !== undefined) attributes['factline.causation_id'] = metadata.causationId;
  const span = tracer.startSpan('create', { kind: (otel as OtelApi).SpanKind.PRODUCER, attributes });
  Object.assign(metadata, traceContextFields(span.spanContext()));
  span.end();
}

/**
 * A `send {topic}` span (kind producer) around a publish of `messages`,
 * linked to each message's own producer when it was made elsewhere (a relay
 * publishing what others created). Runs `work` as it is while no tracer is registered.
 */
export function traceSend<T>(
  system: string,
  topic: string,
  messages: readonly Message[] | undefined,
  work: (span: Span | undefined) => Promise<T>,
  extra?: Attributes,
): Promise<T> {
  const tracer = activeTracer();
  if (tracer === undefined) return work(undefined);
  const attributes: Attributes = {
    'messaging.system': system,
    'messaging.operation.type': 'send',
    'messaging.operation.name': 'send',
    'messaging.destination.name': topic,
    ...extra,
  };
  let links: Link[] | undefined;
  if (messages !== undefined) {
    if (messages.length === 1) Object.assign(attributes, messageAttributes(messages[0] as Message));
    else {
      attributes['messaging.batch.message_count'] = messages.length;
      Object.assign(attributes, sharedIdAttributes(messages));
    }
    links = producerLinks(messages);
  }
  const kind = (otel as OtelApi).SpanKind.PRODUCER;
  return inSpan(tracer, `send ${topic}`, { kind, attributes, ...(links?.length ? { links } : {}) }, work);
}

/** What a consumer's process spans need to know of it. */
export interface ProcessSpanSettings {
  system: string;
  topic: string;
  group: string;
  producerSpan: ProducerSpanRelation;
}

/**
 * The `process {topic}` span (kind consumer) of one delivery: current while
 * the pipeline handles it (so what the handler creates or appends names it
 * as producer), linked to the message's producer span (or its child, with
 * `producerSpan: 'parent'`), ended when the delivery settled.
 */
export function traceProcess<T>(
  settings: ProcessSpanSettings,
  message: Message,
  deliveryCount: number,
  work: () => Promise<T>,
): Promise<T> {
  const tracer = activeTracer();
  if (tracer === undefined) return work();
  const api = otel as OtelApi;
  const remote = spanContextOf(message.metadata);
  const attributes: Attributes = {
    'messaging.system': settings.system,
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': settings.topic,
    'messaging.consumer.group.name': settings.group,
    'factline.delivery_count': deliveryCount,
    'factline.message.type': message.type,
    ...messageAttributes(message),
  };
  const asParent = settings.producerSpan === 'parent' && remote !== undefined;
  const options = {
    kind: api.SpanKind.CONSUMER,
    attributes,
    ...(remote !== undefined && !asParent ? { links: [{ context: remote }] } : {}),
  };
  // Never the fetch loop's context: a consumer started inside a request must not parent every message.
  const parent = asParent ? remoteParent(remote) : api.ROOT_CONTEXT;
  return inSpan(tracer, `process ${settings.topic}`, options, () => work(), parent);
}

/** Records on the current process span that the handler is run the `attempt`-th time. */
export function noteAttempt(attempt: number): void {
  currentSpan()?.setAttribute('factline.attempt', attempt);
}

/** Records a failed try on the current process span, with what the retry policy decided. */
export function noteFailedAttempt(
  error: unknown,
  attempt: number,
  decision: { action: string; delayMs?: number; reason?: string },
): void {
  const span = currentSpan();
  if (span === undefined) return;
  const attributes: Attributes = {
    'factline.attempt': attempt,
    'factline.retry.decision': decision.action,
    'exception.type': error instanceof Error ? error.name : typeof error,
    'exception.message': error instanceof Error ? error.message : String(error),
  };
  if (decision.delayMs !== undefined) attributes['factline.retry.delay_ms'] = decision.delayMs;
  if (decision.reason !== undefined) attributes['factline.dead_letter.reason'] = decision.reason;
  span.addEvent('factline.attempt_failed', attributes);
}

/** Records how the current process span's delivery was settled; a dead letter marks it failed. */
export function noteSettle(outcome: SettleOutcome, error?: unknown): void {
  const span = currentSpan();
  if (span === undefined) return;
  span.setAttribute('factline.settle', outcome);
  span.addEvent('settle', { 'factline.settle': outcome });
  if (outcome === 'dead-letter') recordFailure(span, error ?? new Error('dead-lettered'));
}

/** An internal span (a relay round, a projection batch) around `work`; `work` as it is while no tracer is registered. */
export function traceInternal<T>(
  name: string,
  attributes: () => Attributes,
  work: () => Promise<T>,
  links?: () => Link[],
): Promise<T> {
  const tracer = activeTracer();
  if (tracer === undefined) return work();
  const linked = links?.();
  return inSpan(tracer, name, { attributes: attributes(), ...(linked?.length ? { links: linked } : {}) }, work);
}
