/**
 * What OpenTelemetry costs (`npm run bench -- tracing-overhead`), two workloads, four subjects each,
 * every trial in a child process of its own (the OTel globals are process-wide, so no subject's
 * provider can leak into another's):
 * - `raw`: `@opentelemetry/api` made unresolvable in the child (as in an install without the optional
 *   peer: core takes its plain path), the baseline;
 * - `no-sdk`: the API installed, no provider registered (what most users run);
 * - `sdk-noop`: the SDK 2.x registered as a service would: BasicTracerProvider, always-on sampler,
 *   BatchSpanProcessor into an exporter that drops every span, the async-hooks context manager,
 *   and a MeterProvider with a reader collected once at the end;
 * - `sdk-10pct`: the same with TraceIdRatioBased(0.1) (parent-based: a consumer's span has no parent);
 * - `sdk-without-factline`: the SDK of `sdk-noop` with its context manager started, while
 *   `@factline/core` cannot resolve the API (hide-otel-api-from-core.cjs): what the SDK alone costs;
 * - `sdk-user-span` (append and pipeline): that, plus one span of the user's own around each unit
 *   (each append; each handler call): what one span costs on this unit, to set Factline's beside.
 * Each subject also prints its CPU time per unit (`<subject>.cpuUsPerMessage` / `.cpuUsPerEvent`, µs),
 * steadier than the rate when other processes share the machine.
 * Ratios print as `<subject>/raw`: goals `no-sdk/raw` ≥ 0.98 (≤ 2% cost) and `sdk-noop/raw` ≥ 0.87
 * (≤ 15% cost, i.e. the rate over 1.15).
 *
 * `tracing-overhead-pipeline`: PIPELINE messages over 100 keys published untimed to the in-memory
 * transport, then drained by `createConsumer` with a handler that does nothing: the pipeline's own
 * cost per message (context, retry, lanes, settle, span) is all there is to measure, so the
 * tracing share shows most here; a SQLite transport and inbox add a commit per message that
 * would hide it. `tracing-overhead-append`: APPENDS one-event appends to a SQLite store file
 * (synchronous 'normal'), one after the other, each with its span and latency histogram record.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Consumer, createConsumer, createMessage, getInMemoryTransport, type Transport } from '@factline/core';
import { getSqliteEventStore, type SqliteEventStore } from '@factline/sqlite';
import { packageModule } from '../code-under-test.ts';
import type { Subject, Trial, Workload } from '../harness.ts';
import { orderData } from './payload.ts';
import { sqliteE2e } from './pipeline.ts';

const PIPELINE = Number(process.env.FACTLINE_BENCH_TRACING_MESSAGES ?? 20_000);
const APPENDS = Number(process.env.FACTLINE_BENCH_TRACING_APPENDS ?? 5_000);
const KEYS = 100;
const REPEAT = 5;
const TOPIC = 'orders';
const HIDE_API = new URL('../../../packages/core/src/tracing/fixtures/hide-otel-api.cjs', import.meta.url).pathname;
const HIDE_FROM_CORE = new URL(
  '../../../packages/core/src/tracing/fixtures/hide-otel-api-from-core.cjs',
  import.meta.url,
).pathname;
const CORE_OTEL = packageModule('core', 'tracing/otel');
// Shared by the trials' child processes; each file is named by its child's pid.
const dir = join(tmpdir(), 'factline-bench-tracing-overhead');
let counter = 0;

export function removeTracingOverheadFiles(): void {
  rmSync(dir, { recursive: true, force: true });
}

/** CPU time (user + system) this process spent since `began`, µs: steadier than the wall clock on a shared machine. */
const cpuMicros = (began: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(began);
  return used.user + used.system;
};

type Setup = 'raw' | 'no-sdk' | 'sdk-noop' | 'sdk-10pct' | 'sdk-without-factline' | 'sdk-user-span';

/** Setups whose SDK core must not see: the SDK's own cost, and one span of the user's own per unit. */
const withoutFactline = (setup: Setup) => setup === 'sdk-without-factline' || setup === 'sdk-user-span';

/** The Node flags of a setup's child process. */
const execArgvOf = (setup: Setup) =>
  setup === 'raw'
    ? { execArgv: ['--require', HIDE_API] }
    : withoutFactline(setup)
      ? { execArgv: ['--require', HIDE_FROM_CORE] }
      : {};

/** What a trial registered, to collect once at the end (the metrics' read) and shut down. */
interface Registered {
  collect(): Promise<void>;
  shutdown(): Promise<void>;
  /** `sdk-user-span`: runs `work` in a span of the user's own (the bench's), made current. */
  userSpan?: <T>(name: string, attributes: Record<string, string | number>, work: () => Promise<T>) => Promise<T>;
}

/** Registers the SDK as `setup` says (in this child process only); checks that `raw` really has no API. */
async function register(setup: Setup): Promise<Registered | undefined> {
  if (setup === 'raw') {
    let resolvable = true;
    try {
      createRequire(import.meta.url).resolve('@opentelemetry/api');
    } catch {
      resolvable = false;
    }
    if (resolvable) throw new Error('raw: @opentelemetry/api is still resolvable (the preload did not run)');
    return undefined;
  }
  if (setup === 'no-sdk') return undefined;
  if (withoutFactline(setup)) {
    let seen = true;
    try {
      createRequire(CORE_OTEL).resolve('@opentelemetry/api');
    } catch {
      seen = false;
    }
    if (seen) throw new Error(`${setup}: @factline/core still resolves @opentelemetry/api (the preload did not run)`);
  }
  // Loaded here, never at module load: the `raw` child must not see the API at all.
  const api = await import('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { MeterProvider, MetricReader } = await import('@opentelemetry/sdk-metrics');
  const { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } =
    await import('@opentelemetry/sdk-trace-base');
  const dropping = {
    export: (_spans: unknown[], done: (result: { code: number }) => void) => done({ code: 0 }),
    shutdown: async () => {},
  };
  class OnDemandReader extends MetricReader {
    protected async onShutdown() {}
    protected async onForceFlush() {}
  }
  const sampler =
    setup === 'sdk-10pct' ? new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.1) }) : new AlwaysOnSampler();
  const tracerProvider = new BasicTracerProvider({ sampler, spanProcessors: [new BatchSpanProcessor(dropping)] });
  const reader = new OnDemandReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  api.trace.setGlobalTracerProvider(tracerProvider);
  api.metrics.setGlobalMeterProvider(meterProvider);
  const tracer = api.trace.getTracer('bench');
  // The context manager's async hooks start with its first `with`: an app with any instrumentation pays them.
  const warm = tracer.startSpan('warm');
  api.context.with(api.trace.setSpan(api.context.active(), warm), () => warm.end());
  const userSpan =
    setup === 'sdk-user-span'
      ? <T>(name: string, attributes: Record<string, string | number>, work: () => Promise<T>) =>
          tracer.startActiveSpan(name, { attributes }, async (span) => {
            try {
              return await work();
            } finally {
              span.end();
            }
          })
      : undefined;
  return {
    ...(userSpan ? { userSpan } : {}),
    async collect() {
      await reader.collect();
    },
    async shutdown() {
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
      // A warm-up trial precedes the measured one in the same child: the next registration must take.
      api.trace.disable();
      api.metrics.disable();
      api.context.disable();
    },
  };
}

/** One trial of the consumer pipeline under `setup`. */
function pipelineTrial(setup: Setup): Trial {
  let registered: Registered | undefined;
  let transport: Transport | undefined;
  let consumer: Consumer | undefined;
  let handled = 0;
  let cpu = 0;
  let allHandled: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    allHandled = resolve;
  });
  return {
    setup: async () => {
      registered = await register(setup);
      transport = getInMemoryTransport();
      consumer = createConsumer({
        name: 'billing',
        topic: TOPIC,
        transport,
        concurrency: 8,
        pollMs: 50,
        handler: (message) => {
          const done = () => {
            if (++handled === PIPELINE) allHandled();
          };
          if (registered?.userSpan === undefined) return done();
          return registered.userSpan('process orders', { 'messaging.message.id': message.id }, async () => done());
        },
      });
      await transport.declareSubscription(TOPIC, 'billing');
      const messages = Array.from({ length: PIPELINE }, (_, i) =>
        createMessage({ type: 'OrderPlaced', data: orderData(i), key: `order-${i % KEYS}` }),
      );
      for (let i = 0; i < messages.length; i += 500) await transport.publish(TOPIC, messages.slice(i, i + 500));
    },
    run: async () => {
      const began = process.cpuUsage();
      await (consumer as Consumer).start();
      await done;
      cpu = cpuMicros(began);
      return PIPELINE;
    },
    extras: () => ({ cpuUsPerMessage: cpu / PIPELINE }),
    teardown: async () => {
      await consumer?.stop();
      await registered?.collect();
      await registered?.shutdown();
      await transport?.close();
    },
  };
}

/** One trial of single-event appends to a SQLite store under `setup`. */
function appendTrial(setup: Setup): Trial {
  let registered: Registered | undefined;
  let store: SqliteEventStore | undefined;
  let path = '';
  let cpu = 0;
  return {
    setup: async () => {
      registered = await register(setup);
      mkdirSync(dir, { recursive: true });
      path = join(dir, `append-${process.pid}-${++counter}.db`);
      store = getSqliteEventStore({ path, synchronous: 'normal' });
    },
    run: async () => {
      const s = store as SqliteEventStore;
      const began = process.cpuUsage();
      const userSpan = registered?.userSpan;
      for (let i = 0; i < APPENDS; i++) {
        const streamId = `order-${i % KEYS}`;
        const append = () => s.append(streamId, [{ type: 'OrderPlaced', data: orderData(i) }]);
        if (userSpan === undefined) await append();
        else await userSpan('append order', { 'db.system.name': 'sqlite', 'factline.stream.id': streamId }, append);
      }
      cpu = cpuMicros(began);
      return APPENDS;
    },
    extras: () => ({ cpuUsPerEvent: cpu / APPENDS }),
    teardown: async () => {
      await registered?.collect();
      await registered?.shutdown();
      await store?.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    },
  };
}

const subjects = (trial: (setup: Setup) => Trial): Subject[] =>
  (['raw', 'no-sdk', 'sdk-noop', 'sdk-10pct', 'sdk-without-factline', 'sdk-user-span'] as const).map((setup) => ({
    name: setup,
    isolate: true,
    ...execArgvOf(setup),
    trial: () => trial(setup),
  }));

/** The SQLite end-to-end pipeline (pipeline.ts's `factline-8` subject) with `setup` registered around it. */
function e2eSubject(setup: Setup): Subject {
  const inner = sqliteE2e('tracing-overhead-e2e', setup, 8);
  return {
    name: setup,
    isolate: true,
    ...execArgvOf(setup),
    trial: async () => {
      const registered = await register(setup);
      const trial = await inner.trial();
      if (typeof trial === 'string') {
        await registered?.shutdown();
        return trial;
      }
      return {
        ...trial,
        teardown: async () => {
          await trial.teardown?.();
          await registered?.collect();
          await registered?.shutdown();
        },
      };
    },
  };
}

export const tracingOverheadWorkloads: Workload[] = [
  {
    name: 'tracing-overhead-e2e',
    description:
      'the SQLite pipeline of pipeline-sqlite-e2e (appends → event relay → SQLite transport → consumer with its ' +
      'SQL inbox and one INSERT, store defaults); raw = API not installed; goals no-sdk/raw ≥ 0.98, sdk-noop/raw ≥ 0.87',
    unit: 'messages/s',
    repeat: REPEAT,
    warmup: true,
    subjects: (['raw', 'no-sdk', 'sdk-noop', 'sdk-10pct'] as const).map(e2eSubject),
  },
  {
    name: 'tracing-overhead-pipeline',
    description: `${PIPELINE} messages drained by a consumer on the in-memory transport (no-op handler); raw = API not installed; goals no-sdk/raw ≥ 0.98, sdk-noop/raw ≥ 0.87`,
    unit: 'messages/s',
    repeat: REPEAT,
    warmup: true,
    subjects: subjects(pipelineTrial),
  },
  {
    name: 'tracing-overhead-append',
    description: `${APPENDS} single-event appends to a SQLite store file; raw = API not installed; goals no-sdk/raw ≥ 0.98, sdk-noop/raw ≥ 0.87`,
    unit: 'events/s',
    repeat: REPEAT,
    warmup: true,
    subjects: subjects(appendTrial),
  },
];
