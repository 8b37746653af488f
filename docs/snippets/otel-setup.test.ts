import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getInMemoryEventStore, getInMemoryTransport, type Logger } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { AggregationTemporality, InMemoryMetricExporter } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { subscribeWithTelemetry } from './otel-options.ts';
import { startTelemetry } from './otel-setup.ts';

/** The SDK's in-memory exporters, kept readable after shutdown (theirs forget what they held). */
class KeptSpans extends InMemorySpanExporter {
  override shutdown() {
    return Promise.resolve();
  }
}
class KeptPoints extends InMemoryMetricExporter {
  override shutdown() {
    return Promise.resolve();
  }
}

test('the OTel set-up snippet exports Factline spans and metrics; the options snippet parents the process span', async () => {
  const spans = new KeptSpans();
  const points = new KeptPoints(AggregationTemporality.CUMULATIVE);
  const stopTelemetry = startTelemetry(spans, points);
  const logged: string[] = [];
  const at = (level: string) => (_obj: object | string, msg?: string) => logged.push(`${level} ${msg}`);
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  let shipped = 0;
  const bus = subscribeWithTelemetry(getInMemoryTransport(), logger, () => {
    shipped += 1;
    if (shipped === 1) throw new Error('carrier offline');
  });
  await bus.start();
  try {
    const store = getInMemoryEventStore();
    // Sampling keeps 1 trace in 10: 100 operations (each publish starts its own trace) keep some.
    for (let i = 0; i < 100; i++) {
      await store.append(`order-${i}`, [{ type: 'OrderPlaced', data: {} }]);
      await bus.publish('OrderPlaced', { orderId: i }, { key: `order-${i}` });
      await waitUntil(() => shipped >= i + 2, 'shipped');
    }
  } finally {
    // Telemetry first here: a stopped consumer no longer reports its counters to the last export.
    await stopTelemetry();
    await bus.stop();
  }
  const names = new Set(spans.getFinishedSpans().map((s) => s.name));
  assert.ok(
    [...names].some((n) => n === 'process orders' || n === 'send orders' || n.startsWith('append')),
    `Factline spans were exported: ${[...names].join(', ')}`,
  );
  const sends = new Set(
    spans
      .getFinishedSpans()
      .filter((s) => s.name === 'send orders')
      .map((s) => s.spanContext().spanId),
  );
  const processes = spans.getFinishedSpans().filter((s) => s.name === 'process orders');
  assert.ok(processes.length > 0, 'process spans were kept');
  for (const process of processes) {
    assert.ok(sends.has(process.parentSpanContext?.spanId ?? ''), 'the process span is the send span’s child');
  }
  const exported = points
    .getMetrics()
    .flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name)));
  assert.ok(exported.includes('factline.append.duration'), 'the append histogram exported at shutdown');
  assert.ok(exported.includes('factline.consumer.handled'), 'the consumer counters exported at shutdown');
  assert.ok(
    logged.some((l) => l.startsWith('warn')),
    'the handler failure went to the logger',
  );
});
