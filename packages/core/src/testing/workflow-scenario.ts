import { ValidationError } from '../errors/index.ts';
import { createMessage, type Message, type MessageInput, messageFromEvent } from '../messaging/message.ts';
import { checkOptions } from '../options/check-options.ts';
import { getInMemorySnapshotStore } from '../snapshots/in-memory.ts';
import type { SnapshotStore } from '../snapshots/types.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import type { Event, EventStore } from '../store/types.ts';
import { createWorkflowHandler, type WorkflowHandler } from '../workflows/handler.ts';
import { instanceStreamId, loadInstance, type WorkflowInstance } from '../workflows/instance.ts';
import { workflowEventTypes } from '../workflows/records.ts';
import { messageFromSent } from '../workflows/relay.ts';
import type { WorkflowSnapshots } from '../workflows/snapshots.ts';
import { createVirtualClock, type VirtualClock } from '../workflows/timers/clock.ts';
import { getInMemoryTimerStore } from '../workflows/timers/in-memory.ts';
import { createWorkflowTimers } from '../workflows/timers/poller.ts';
import type { TimerStore } from '../workflows/timers/types.ts';
import type { Workflow } from '../workflows/types.ts';

/** What a scenario's message handler is given beside the message. */
export interface ScenarioContext {
  /** The scenario's store: append (or `handleCommand`) here; appended events are delivered as messages. */
  store: EventStore;
  /** The virtual time, ms. */
  now: () => number;
  /** Sends a message to whoever handles its type (delivered in the same drain). */
  publish: (message: MessageInput) => void;
}

export type ScenarioHandler = (message: Message, context: ScenarioContext) => unknown;

export interface WorkflowScenarioOptions {
  // biome-ignore lint/suspicious/noExplicitAny: workflows of any state and unions run side by side.
  workflows: readonly Workflow<any, any, any>[];
  /** The services around the workflows, by message type (commands the workflows send, events they wait for). */
  handlers?: Readonly<Record<string, ScenarioHandler>>;
  /** Where the virtual clock starts, ms since the epoch. Default 2026-01-01T00:00:00Z. */
  startAt?: number;
  /**
   * Instance snapshots, by workflow name: those workflows load their
   * instances from snapshots kept in `scenario.snapshots` (in memory), as
   * `createWorkflowHandler`'s `snapshots` option does. `every` defaults to 1
   * here, so each input after the first loads its instance through
   * `fromSnapshot` and each recorded one saves it through `toSnapshot`. A
   * snapshot that fails or is refused fails `send`/`advance` with its error.
   */
  snapshots?: Readonly<Record<string, ScenarioSnapshots>>;
}

/** A workflow's `snapshots` in the scenario harness: the handler's option without `store` and `onError`. */
// biome-ignore lint/suspicious/noExplicitAny: conversions of any state.
export type ScenarioSnapshots = Omit<WorkflowSnapshots<any>, 'store' | 'onError'>;

export interface WorkflowScenario {
  readonly store: EventStore;
  readonly clock: VirtualClock;
  readonly timers: TimerStore;
  /** Where the workflows given `snapshots` keep their instance snapshots. */
  readonly snapshots: SnapshotStore;
  /** The runtime of each workflow, by name (stats, parked instances). */
  readonly workflows: ReadonlyMap<string, WorkflowHandler>;
  /** Every message delivered so far, in delivery order. */
  readonly delivered: readonly Message[];
  /** Messages no workflow and no handler took. */
  readonly unrouted: readonly Message[];
  /** Publishes a message and runs everything it leads to, until nothing is left to do. */
  send(message: MessageInput): Promise<void>;
  /** Runs everything already recorded or queued (e.g. after appending to `store` directly), until idle. */
  drain(): Promise<void>;
  /** Moves the virtual clock, firing each timer at its due time, and drains after each. */
  advance(ms: number): Promise<void>;
  /** An instance as its stream tells it. */
  instance<State, In extends Event, Out extends Event>(
    workflow: Workflow<State, In, Out>,
    instanceId: string,
  ): Promise<WorkflowInstance<State>>;
  /** The types of the messages delivered so far (for compact assertions). */
  deliveredTypes(): string[];
}

/**
 * Runs whole workflows with the services around them on the in-memory store,
 * with a virtual clock: `send` a message and everything it leads to runs
 * (sent messages reach their handlers, the events those append reach the
 * workflows) until nothing is left; `advance` moves time and fires the timers
 * due. No real sleeps, no polling. A handler's failure rejects `send`/`advance`.
 *
 * @example
 * const scenario = createWorkflowScenario({ workflows: [checkout], handlers: { ChargeCard: charge } });
 * await scenario.send({ type: 'OrderPlaced', data: { orderId: 'o1' } });
 * await scenario.advance(15 * 60_000);
 * assert.deepEqual(scenario.deliveredTypes().at(-1), 'CancelOrder');
 */
export function createWorkflowScenario(options: WorkflowScenarioOptions): WorkflowScenario {
  checkOptions(
    options,
    { workflows: 'array', handlers: 'object', startAt: 'non-negative-integer', snapshots: 'object' },
    'createWorkflowScenario',
    { required: ['workflows'], optional: false },
  );
  const clock = createVirtualClock(options.startAt ?? Date.parse('2026-01-01T00:00:00Z'));
  const store = getInMemoryEventStore({ now: clock.now });
  const timers = getInMemoryTimerStore(store);
  const snapshots = getInMemorySnapshotStore();
  const snapshotErrors: unknown[] = [];
  const names = new Set(options.workflows.map((workflow) => workflow.name));
  for (const name of Object.keys(options.snapshots ?? {})) {
    if (!names.has(name)) {
      throw new ValidationError({
        path: `createWorkflowScenario.snapshots.${name}`,
        message: `names no workflow of the scenario (${[...names].join(', ')})`,
      });
    }
  }
  const handlerOf = (workflow: WorkflowScenarioOptions['workflows'][number]) => {
    const given = options.snapshots?.[workflow.name];
    if (given === undefined) return createWorkflowHandler(workflow, { store, now: clock.now });
    return createWorkflowHandler(workflow, {
      store,
      now: clock.now,
      snapshots: { every: 1, ...given, store: snapshots, onError: (error) => snapshotErrors.push(error) },
    });
  };
  const workflows = new Map(options.workflows.map((workflow) => [workflow.name, handlerOf(workflow)]));
  /** A snapshot that failed or was refused fails the scenario, with its error. */
  const throwSnapshotErrors = () => {
    if (snapshotErrors.length > 0) throw snapshotErrors.splice(0)[0];
  };
  const timerErrors: unknown[] = [];
  const poller = createWorkflowTimers({
    timers,
    handlers: [...workflows.values()],
    clock,
    onError: (error) => timerErrors.push(error),
  });
  const handlers = options.handlers ?? {};
  const queue: Message[] = [];
  const delivered: Message[] = [];
  const unrouted: Message[] = [];
  let checkpoint = 0;
  const context: ScenarioContext = {
    store,
    now: clock.now,
    publish: (message) => queue.push(createMessage(message, clock.now)),
  };

  /** Moves what the store recorded since the last look into the queue. */
  const collect = async () => {
    for await (const event of store.readAll({ after: checkpoint })) {
      checkpoint = event.position;
      if (event.type === workflowEventTypes.sent) queue.push(messageFromSent(event));
      else if (!event.type.startsWith('$workflow.')) queue.push(messageFromEvent(event));
    }
  };

  const drain = async () => {
    for (;;) {
      await collect();
      const message = queue.shift();
      if (!message) return;
      delivered.push(message);
      let taken = false;
      for (const workflow of workflows.values()) {
        if (!workflow.inputs.includes(message.type)) continue;
        taken = true;
        await workflow.handle(message);
        throwSnapshotErrors();
      }
      const handler = handlers[message.type];
      if (handler) {
        taken = true;
        await handler(message, context);
      }
      if (!taken) unrouted.push(message);
    }
  };

  return {
    store,
    clock,
    timers,
    snapshots,
    workflows,
    delivered,
    unrouted,
    drain,
    async send(message) {
      queue.push(createMessage(message, clock.now));
      await drain();
    },
    async advance(ms) {
      const until = clock.now() + ms;
      for (;;) {
        const next = await timers.nextDueAt();
        if (next === undefined || next > until) break;
        clock.advance(Math.max(0, next - clock.now()));
        await poller.fireDue();
        // A timer that could not be recorded fails the scenario, with its error.
        if (timerErrors.length > 0) throw timerErrors.splice(0)[0];
        throwSnapshotErrors();
        await drain();
      }
      clock.advance(until - clock.now());
    },
    instance: (workflow, instanceId) => loadInstance(store, workflow, instanceStreamId(workflow, instanceId)),
    deliveredTypes: () => delivered.map((message) => message.type),
  };
}
