/**
 * What the workflow workloads on SQLite (workflow.ts) and PostgreSQL (workflow-postgres.ts) share: the
 * workflows, the load, and the two trials over a store, transport and timer store of either database.
 * - steps: STEPS messages published in batches of 500; via the workflow, each `Start` is recorded with its
 *   `send` output, relayed to `steps` and handled there; else each `Step` goes straight to `steps`. Timed
 *   to the last step handled.
 * - timer lateness: TIMERS timers set in setup, due over SPREAD_MS from half a second after the run starts,
 *   fired by the timer poller; lateness = the fired input recorded − its due time, p50/p99 in ms.
 */
import {
  createConsumer,
  createMessage,
  createWorkflowHandler,
  createWorkflowTimers,
  defineWorkflow,
  defineWorkflowRelay,
  type Event,
  type EventStore,
  type Inbox,
  type Message,
  type Projection,
  schedule,
  send,
  systemClock,
  type TimerStore,
  type Transport,
} from '@factline/core';
import { percentile, report, type Trial } from '../harness.ts';

export const STEPS = Number(process.env.FACTLINE_BENCH_WORKFLOW_STEPS ?? 2000);
export const TIMERS = Number(process.env.FACTLINE_BENCH_WORKFLOW_TIMERS ?? 10_000);
/** Over how long the timers fall due: 10,000 over 20 s is 500 firings/s. */
export const SPREAD_MS = Number(process.env.FACTLINE_BENCH_WORKFLOW_TIMER_SPREAD_MS ?? 20_000);

type JobInput = Event<'Start', { id: string }> | Event<'Fire', { id: string }>;
type JobOutput = Event<'Step', { id: string }>;
export const job = defineWorkflow<null, JobInput, JobOutput>({
  name: 'job',
  inputs: ['Start', 'Fire'],
  start: ['Start'],
  correlate: (input) => input.data.id,
  initialState: () => null,
  evolve: (state) => state,
  decide: (input) => [send({ type: 'Step', data: { id: input.data.id } })],
});

type TimerInput = Event<'Set', { id: string; at: number }> | Event<'Fire', { id: string }>;
export const timed = defineWorkflow<null, TimerInput>({
  name: 'timed',
  inputs: ['Set', 'Fire'],
  start: ['Set'],
  correlate: (input) => input.data.id,
  initialState: () => null,
  evolve: (state) => state,
  decide: (input) =>
    input.type === 'Set'
      ? schedule({ token: 't', at: new Date(input.data.at), message: { type: 'Fire', data: { id: input.data.id } } })
      : [],
});

/** Waits (polling, with a deadline) until `done()`. */
export async function until(done: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Appends batches of 10 events from `writers` loops until stopped; returns what stops them and the count. */
export function startLoad(store: EventStore, writers = 4): { stop(): Promise<number> } {
  let running = true;
  let appended = 0;
  const loops = Array.from({ length: writers }, async (_, w) => {
    for (let n = 0; running; n++) {
      const events = Array.from({ length: 10 }, (_, i) => ({ type: 'Load', data: { w, n, i, pad: 'x'.repeat(200) } }));
      await store.append(`load-${w}-${n}`, events);
      appended += events.length;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return appended;
    },
  };
}

/** p50 and p99 of `values`, reported under `workload` as `<subject>.p50` and `<subject>.p99` (ms). */
export function reportLateness(workload: string, subject: string, values: readonly number[]): void {
  const sorted = [...values].sort((a, b) => a - b);
  report(workload, `${subject}.p50`, percentile(sorted, 50), 'ms');
  report(workload, `${subject}.p99`, percentile(sorted, 99), 'ms');
}

/** A database's side of the steps trial. */
export interface StepsParts<Tx> {
  store: EventStore;
  transport: Transport;
  inbox: Inbox<Tx>;
  /**
   * The step handler's one INSERT through the inbox's transaction. Synchronous where the inbox runs the
   * handler in its transaction synchronously (SQLite): the handler then stays synchronous too.
   */
  record: (message: Message, tx: Tx) => unknown;
  /** Runs the workflow relay as a projection of `store`. */
  startRelay: (relay: Projection<unknown>) => Promise<{ stop(): Promise<unknown> }>;
  /** Removes the database's leftovers, once the store and transport closed. */
  remove: () => unknown;
}

/** The steps trial (see the module's comment) on `parts`. */
export function stepsTrial<Tx>(viaWorkflow: boolean, parts: StepsParts<Tx>): Trial {
  const { store, transport, record } = parts;
  let handled = 0;
  const counted = () => {
    handled++;
  };
  const handler = createWorkflowHandler(job, { store });
  const inputs = createConsumer({ name: 'job', topic: 'jobs', transport, handler: (m) => handler.handle(m) });
  const steps = createConsumer<Tx>({
    name: 'steps',
    topic: 'steps',
    transport,
    inbox: parts.inbox,
    handler(message, tx) {
      const recorded = record(message, tx);
      if (recorded instanceof Promise) return recorded.then(counted);
      counted();
    },
  });
  let relay: { stop(): Promise<unknown> } | undefined;
  return {
    async setup() {
      await steps.start();
      if (viaWorkflow) {
        await inputs.start();
        relay = await parts.startRelay(defineWorkflowRelay({ name: 'job_relay', transport, topic: 'steps' }));
      }
    },
    async run() {
      const messages = Array.from({ length: STEPS }, (_, i) =>
        viaWorkflow
          ? createMessage({ type: 'Start', data: { id: `j${i}` }, key: `j${i}` })
          : createMessage({ type: 'Step', data: { id: `j${i}` }, key: `j${i}` }),
      );
      for (let i = 0; i < messages.length; i += 500) {
        await transport.publish(viaWorkflow ? 'jobs' : 'steps', messages.slice(i, i + 500));
      }
      await until(() => handled >= STEPS, 600_000);
      return STEPS;
    },
    async teardown() {
      await relay?.stop();
      await inputs.stop();
      await steps.stop();
      await transport.close();
      await store.close();
      await parts.remove();
    },
  };
}

/** A database's side of the timer lateness trial. */
export interface LatenessParts {
  /** Where the figures go (`workflow-sqlite-timer-lateness`). */
  workload: string;
  /** Under the append load of `startLoad` (subject `loaded`), else idle (subject `factline`). */
  loaded: boolean;
  /** The store the load appends to. */
  store: EventStore;
  /** The store the workflow handler reads and appends through (default `store`). */
  handlerStore?: EventStore;
  timers: TimerStore;
  /** Called as the run starts, before the poller. */
  onStart?: () => void;
  /** Called after each batch of firings with its duration (ms) and size. */
  onBatch?: (ms: number, size: number) => void;
  /** Figures of the database's own, beside `load events/s`. */
  extras?: () => Record<string, number>;
  /** Closes the store and timer store and removes the database's leftovers. */
  close: () => Promise<void>;
}

/** The timer lateness trial (see the module's comment) on `parts`. */
export function latenessTrial(parts: LatenessParts): Trial {
  const { loaded, store, timers } = parts;
  const handler = createWorkflowHandler(timed, { store: parts.handlerStore ?? store });
  const far = Date.now() + 3_600_000;
  const lateness: number[] = [];
  let shift = 0;
  let appended = 0;
  const clock = { now: () => Date.now() + shift, setTimer: systemClock.setTimer };
  const measuring: typeof handler = {
    ...handler,
    fireTimer: async (timer) => {
      const outcome = await handler.fireTimer(timer);
      lateness.push(clock.now() - timer.dueAt);
      return outcome;
    },
    fireTimers: async (due) => {
      const started = performance.now();
      const firings = await handler.fireTimers(due);
      parts.onBatch?.(performance.now() - started, due.length);
      const at = clock.now();
      for (const { timer } of firings) lateness.push(at - timer.dueAt);
      return firings;
    },
  };
  const poller = createWorkflowTimers({ timers, handlers: [measuring], clock, pollMs: 10, batchSize: 500 });
  return {
    async setup() {
      for (let i = 0; i < TIMERS; i += 500) {
        await Promise.all(
          Array.from({ length: Math.min(500, TIMERS - i) }, (_, j) =>
            handler.handle(
              createMessage({ type: 'Set', data: { id: `t${i + j}`, at: far + ((i + j) * SPREAD_MS) / TIMERS } }),
            ),
          ),
        );
      }
    },
    async run() {
      const load = loaded ? startLoad(store) : undefined;
      shift = far - Date.now() - 500; // the first timer falls due half a second from now
      parts.onStart?.();
      await poller.start();
      try {
        await until(() => lateness.length >= TIMERS, 600_000);
      } finally {
        await poller.stop();
        appended = (await load?.stop()) ?? 0;
      }
      reportLateness(parts.workload, loaded ? 'loaded' : 'factline', lateness);
      return TIMERS;
    },
    extras: (): Record<string, number> => ({
      ...(loaded ? { 'load events/s': Math.round(appended / ((SPREAD_MS + 500) / 1000)) } : {}),
      ...parts.extras?.(),
    }),
    teardown: () => parts.close(),
  };
}
