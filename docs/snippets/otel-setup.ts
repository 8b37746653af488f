// #region setup
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';

/** Registers the OTel SDK 2.x once, at start-up, before Factline's parts start. */
export function startTelemetry(spanExporter: SpanExporter, metricExporter: PushMetricExporter) {
  const tracerProvider = new BasicTracerProvider({
    // Keep 1 trace in 10 (a consumer's span has no parent: the ratio decides it too).
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.1) }),
    spanProcessors: [new BatchSpanProcessor(spanExporter)],
  });
  const meterProvider = new MeterProvider({
    readers: [new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 15_000 })],
  });
  // Spans follow async work (a handler's awaits) through AsyncLocalStorage.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);
  return async function stopTelemetry() {
    await tracerProvider.shutdown(); // flushes the last spans
    await meterProvider.shutdown();
  };
}
// #endregion
