import { getSqliteEventStore } from '@factline/sqlite';
import * as api from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { orderData } from './workloads/payload.ts';

const mode = process.argv[2];
if (mode !== 'none') {
  const dropping = {
    export: (_s: unknown, cb: (r: { code: number }) => void) => cb({ code: 0 }),
    shutdown: async () => {},
  };
  const tp = new BasicTracerProvider({
    sampler: new AlwaysOnSampler(),
    spanProcessors: [new BatchSpanProcessor(dropping as never)],
  });
  if (mode !== 'meter') api.trace.setGlobalTracerProvider(tp);
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  if (mode !== 'trace')
    api.metrics.setGlobalMeterProvider(
      new MeterProvider({
        readers: [
          new PeriodicExportingMetricReader({
            exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
            exportIntervalMillis: 600000,
          }),
        ],
      }),
    );
}
const store = getSqliteEventStore({ path: `/tmp/sb/otel-${process.pid}.db`, synchronous: 'normal' });
for (let i = 0; i < 3000; i++) await store.append(`order-${i % 100}`, [{ type: 'OrderPlaced', data: orderData(i) }]);
const t = performance.now();
const c = process.cpuUsage();
for (let i = 0; i < 20000; i++) await store.append(`order-${i % 100}`, [{ type: 'OrderPlaced', data: orderData(i) }]);
const u = process.cpuUsage(c);
console.log(mode, Math.round(performance.now() - t), 'ms', ((u.user + u.system) / 20000).toFixed(1), 'cpu us/append');
await store.close();
