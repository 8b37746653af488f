import type { Event, EventMetadata } from '../store/types.ts';

/** A message a workflow receives: the transport's message, or a fired timer's. */
export interface WorkflowInput<E extends Event = Event> {
  /** Unique per message; an instance records each id once (a redelivery is a duplicate). */
  id: string;
  type: E['type'];
  data: E['data'];
  metadata: EventMetadata;
}

/** The input form of each member of an event union, kept apart by `type`. */
export type WorkflowInputOf<E extends Event> = E extends Event ? WorkflowInput<E> & Pick<E, 'type' | 'data'> : never;

/** Send a message (an event to publish or a command for another service's handler). */
export interface SendOutput<Out extends Event = Event> {
  kind: 'send';
  message: Pick<Out, 'type' | 'data'> & { key?: string };
  /** The topic it is published to; default: the relay's topic. */
  topic?: string;
}

/** Schedule a timer: at its due time `message` comes back to this instance as an input. */
export interface ScheduleOutput<In extends Event = Event> {
  kind: 'schedule';
  /** Names the timer within the instance: scheduling the token again replaces it; `cancel` removes it. */
  token: string;
  /** Absolute due time, or */
  at?: Date;
  /** milliseconds after the decision was recorded (the due time is rounded up to a whole millisecond). */
  afterMs?: number;
  message: Pick<In, 'type' | 'data'>;
}

/** Cancel the instance's pending timer of this token (nothing when none is pending). */
export interface CancelOutput {
  kind: 'cancel';
  token: string;
}

/** The instance is done: its pending timers are dropped, later inputs are ignored and counted. */
export interface CompleteOutput {
  kind: 'complete';
}

export type WorkflowOutput<Out extends Event = Event, In extends Event = Event> =
  | SendOutput<Out>
  | ScheduleOutput<In>
  | CancelOutput
  | CompleteOutput;

/** What `evolve` is given: an input the instance received, or a message it sent. */
export type WorkflowRecord<In extends Event = Event, Out extends Event = Event> =
  | { kind: 'input'; message: WorkflowInputOf<In> }
  | { kind: 'sent'; message: Pick<Out, 'type' | 'data'> };

/**
 * A workflow (process manager) as pure functions. Nothing is replayed: the
 * instance's stream records what it received and what it decided, and its
 * state is `evolve` folded over those records.
 */
export interface Workflow<State, In extends Event = Event, Out extends Event = Event> {
  /** The stream category of its instances (`<name>-<instanceId>`): letters, digits, `_` and `.`. */
  name: string;
  /** The input types it handles; others are ignored (and counted). */
  inputs: readonly In['type'][];
  /** The input types that may create an instance; any other for no instance goes to the not-found hook. */
  start: readonly In['type'][];
  /** The instance an input belongs to; `undefined` for none (treated as not found). */
  correlate: (input: WorkflowInputOf<In>) => string | undefined;
  initialState: () => State;
  evolve: (state: State, recorded: WorkflowRecord<In, Out>) => State;
  /** What to do on an input: messages to send, timers, completion. Throw to refuse (see the handler's failures). */
  decide: (input: WorkflowInputOf<In>, state: State) => WorkflowOutput<Out, In> | readonly WorkflowOutput<Out, In>[];
}
