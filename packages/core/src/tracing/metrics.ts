import type {
  BatchObservableResult,
  Histogram,
  Meter,
  MeterProvider,
  Observable,
  ObservableCounter,
  ObservableGauge,
} from '@opentelemetry/api';
import { type OtelApi, otel } from './otel.ts';

/** Factline's instruments; names documented in docs/observability.md. */
export interface FactlineInstruments {
  meter: Meter;
  /** `factline.append.duration` (s): one event-store append, from call to commit. */
  appendDuration: Histogram;
  /** `factline.consumer.handled`: messages handled and acknowledged, per consumer group (observed from its stats). */
  handled: ObservableCounter;
  /** `factline.consumer.retries`: failed handler runs tried again. */
  retries: ObservableCounter;
  /** `factline.consumer.dead_lettered`: messages given up on, into the dead-letter store. */
  deadLettered: ObservableCounter;
  /** `factline.consumer.dead_letter.depth`: dead letters waiting (state `dead`), per consumer group and topic. */
  deadLetterDepth: ObservableGauge;
  /** `factline.consumer.lag`: messages waiting for a consumer group, where the transport can tell. */
  consumerLag: ObservableGauge;
  /** `factline.consumer.lag.duration` (s): age of the oldest message waiting for a group, 0 when none. */
  consumerLagDuration: ObservableGauge;
  /** `factline.relay.published`: messages an outbox relay published. */
  relayPublished: ObservableCounter;
  /** `factline.projection.lag` (events): head position − checkpoint, per projection. */
  projectionLag: ObservableGauge;
  /** `factline.projection.lag.duration` (s): age of the oldest event past the checkpoint, 0 when caught up. */
  projectionLagDuration: ObservableGauge;
  /** `factline.outbox.backlog`: outbox rows waiting to be published. */
  outboxBacklog: ObservableGauge;
  /** `factline.relay.lag` (s): age of the oldest outbox row waiting, 0 when the outbox is empty. */
  relayLag: ObservableGauge;
}

let cached: { provider: MeterProvider; instruments: FactlineInstruments | undefined } | undefined;

const create = (meter: Meter): FactlineInstruments => ({
  meter,
  appendDuration: meter.createHistogram('factline.append.duration', {
    unit: 's',
    description: 'Duration of one event-store append',
  }),
  handled: meter.createObservableCounter('factline.consumer.handled', {
    unit: '{message}',
    description: 'Messages handled and acknowledged',
  }),
  retries: meter.createObservableCounter('factline.consumer.retries', {
    unit: '{attempt}',
    description: 'Failed handler runs tried again',
  }),
  deadLettered: meter.createObservableCounter('factline.consumer.dead_lettered', {
    unit: '{message}',
    description: 'Messages dead-lettered',
  }),
  deadLetterDepth: meter.createObservableGauge('factline.consumer.dead_letter.depth', {
    unit: '{message}',
    description: 'Dead letters waiting, per consumer group and topic',
  }),
  consumerLag: meter.createObservableGauge('factline.consumer.lag', {
    unit: '{message}',
    description: 'Messages waiting for a consumer group (not yet acknowledged)',
  }),
  consumerLagDuration: meter.createObservableGauge('factline.consumer.lag.duration', {
    unit: 's',
    description: 'Age of the oldest message waiting for a consumer group (0 when none)',
  }),
  relayPublished: meter.createObservableCounter('factline.relay.published', {
    unit: '{message}',
    description: 'Messages an outbox relay published',
  }),
  projectionLag: meter.createObservableGauge('factline.projection.lag', {
    unit: '{event}',
    description: 'Events appended but not yet applied by a projection',
  }),
  projectionLagDuration: meter.createObservableGauge('factline.projection.lag.duration', {
    unit: 's',
    description: 'Age of the oldest event a projection has not applied yet (0 when caught up)',
  }),
  outboxBacklog: meter.createObservableGauge('factline.outbox.backlog', {
    unit: '{message}',
    description: 'Outbox rows waiting to be published',
  }),
  relayLag: meter.createObservableGauge('factline.relay.lag', {
    unit: 's',
    description: 'Age of the oldest outbox row waiting to be published (0 when empty)',
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

/**
 * Registers `observe` with the instruments it reads (the observable ones
 * read a runtime's stats at each collection: no cost per message); returns
 * its removal. A no-op while no meter provider is registered.
 */
export function observeMetrics(
  pick: (instruments: FactlineInstruments) => Observable[],
  observe: (instruments: FactlineInstruments, result: BatchObservableResult) => void | Promise<void>,
): () => void {
  const instruments = factlineInstruments();
  if (instruments === undefined) return () => {};
  const observables = pick(instruments);
  const callback = (result: BatchObservableResult) => observe(instruments, result);
  instruments.meter.addBatchObservableCallback(callback, observables);
  return () => instruments.meter.removeBatchObservableCallback(callback, observables);
}

/**
 * One batch callback shared by every runtime of a kind in the process: their
 * points carry the same attributes (or none), and two callbacks observing one
 * point would each replace the other's value. Each `hold()` is a runtime
 * running; the callback is registered by the first and removed when the last
 * releases, and made again when another meter provider was registered since.
 *
 * @example
 * const hold = sharedObservation((i) => [i.relayPublished], observeRelays);
 * const release = hold(); // on start; release() on stop
 */
export function sharedObservation(
  pick: (instruments: FactlineInstruments) => Observable[],
  observe: (instruments: FactlineInstruments, result: BatchObservableResult) => void | Promise<void>,
): () => () => void {
  let holders = 0;
  let registration: { instruments: FactlineInstruments | undefined; remove: () => void } | undefined;
  return () => {
    holders += 1;
    const instruments = factlineInstruments();
    if (registration?.instruments !== instruments) {
      registration?.remove();
      registration = { instruments, remove: observeMetrics(pick, observe) };
    }
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      holders -= 1;
      if (holders > 0) return;
      registration?.remove();
      registration = undefined;
    };
  };
}
