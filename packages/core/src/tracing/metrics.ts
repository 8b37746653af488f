import type { Counter, Histogram, Meter, MeterProvider, ObservableGauge } from '@opentelemetry/api';
import { type OtelApi, otel } from './otel.ts';

/** Factline's instruments; names documented in docs/observability.md. */
export interface FactlineInstruments {
  meter: Meter;
  /** `factline.append.duration` (s): one event-store append, from call to commit. */
  appendDuration: Histogram;
  /** `factline.consumer.handled`: messages applied by a handler and acknowledged. */
  handled: Counter;
  /** `factline.consumer.retries`: failed handler runs tried again. */
  retries: Counter;
  /** `factline.consumer.dead_lettered`: messages given up on, into the dead-letter store. */
  deadLettered: Counter;
  /** `factline.consumer.lag` (s): a message's age when its handling starts (since it was created). */
  consumerLag: Histogram;
  /** `factline.relay.published`: messages an outbox relay published. */
  relayPublished: Counter;
  /** `factline.relay.lag` (s): a message's age when the outbox relay published it. */
  relayLag: Histogram;
  /** `factline.projection.lag` (events): head position − checkpoint, per projection. */
  projectionLag: ObservableGauge;
  /** `factline.projection.lag.seconds` (s): age of the oldest event a projection has not applied (0 when caught up). */
  projectionLagSeconds: ObservableGauge;
  /** `factline.consumer.dead_letter.depth`: dead letters waiting (state `dead`), per consumer. */
  deadLetterDepth: ObservableGauge;
  /** `factline.outbox.backlog`: rows waiting in an outbox, as its relay last read them (at most a batch). */
  outboxBacklog: ObservableGauge;
}

let cached: { provider: MeterProvider; instruments: FactlineInstruments | undefined } | undefined;

const create = (meter: Meter): FactlineInstruments => ({
  meter,
  appendDuration: meter.createHistogram('factline.append.duration', {
    unit: 's',
    description: 'Duration of one event-store append',
  }),
  handled: meter.createCounter('factline.consumer.handled', { description: 'Messages handled and acknowledged' }),
  retries: meter.createCounter('factline.consumer.retries', { description: 'Failed handler runs tried again' }),
  deadLettered: meter.createCounter('factline.consumer.dead_lettered', { description: 'Messages dead-lettered' }),
  consumerLag: meter.createHistogram('factline.consumer.lag', {
    unit: 's',
    description: "A message's age when a consumer starts handling it",
  }),
  relayPublished: meter.createCounter('factline.relay.published', {
    description: 'Messages an outbox relay published',
  }),
  relayLag: meter.createHistogram('factline.relay.lag', {
    unit: 's',
    description: "A message's age when its outbox relay published it",
  }),
  projectionLag: meter.createObservableGauge('factline.projection.lag', {
    unit: '{event}',
    description: 'Events appended but not yet applied by a projection',
  }),
  projectionLagSeconds: meter.createObservableGauge('factline.projection.lag.seconds', {
    unit: 's',
    description: 'Age of the oldest event a projection has not applied',
  }),
  deadLetterDepth: meter.createObservableGauge('factline.consumer.dead_letter.depth', {
    unit: '{message}',
    description: 'Dead letters waiting, per consumer',
  }),
  outboxBacklog: meter.createObservableGauge('factline.outbox.backlog', {
    unit: '{message}',
    description: 'Rows waiting in an outbox as its relay last read them',
  }),
});

/**
 * The instruments of the registered meter provider, or `undefined` while
 * none is registered (or the API is absent): callers then skip measuring.
 * Made once per provider.
 */
export function factlineInstruments(): FactlineInstruments | undefined {
  if (otel === undefined) return undefined;
  const api = otel as OtelApi;
  const provider = api.metrics.getMeterProvider();
  if (cached?.provider === provider) return cached.instruments;
  const meter = provider.getMeter('@factline/core');
  cached = { provider, instruments: meter === api.createNoopMeter() ? undefined : create(meter) };
  return cached.instruments;
}
