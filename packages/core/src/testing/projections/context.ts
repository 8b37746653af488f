import type { ProjectionRunner, ProjectionRunnerOptions } from '../../projections/runner.ts';
import type { Projection, ProjectionBackend } from '../../projections/types.ts';
import type { EventStore, RecordedEvent } from '../../store/types.ts';

/** What a counter read model holds for one projection. */
export interface CounterSnapshot {
  /** Events applied per stream id. */
  perStream: Record<string, number>;
  /** The position of every applied event, in the order applied, duplicates kept. */
  applied: number[];
}

/**
 * A tiny read model the adapter writes in its own SQL, so the suite can check
 * what a projection really committed. Its rows are kept per projection name
 * (cases share tables; the model of a projection's second version is kept
 * under another name, standing for its own tables); it must not de-duplicate:
 * an event applied twice counts twice and shows twice in `applied`.
 */
export interface CounterModel<Tx> {
  /** Creates the tables if they are missing (runs for every projection built on the model). */
  init(tx: Tx): void | Promise<void>;
  /** Deletes the rows of `projection`, and only those. */
  reset(tx: Tx, projection: string): void | Promise<void>;
  /** For each event: adds 1 to the (projection, stream) counter and records (projection, position). */
  apply(tx: Tx, events: readonly RecordedEvent[], projection: string): void | Promise<void>;
  /** What is committed for `projection`. */
  read(projection: string): Promise<CounterSnapshot>;
}

/** One store, its projection backend and a counter model on them. */
export interface ProjectionEnvironment<Tx> {
  store: EventStore;
  backend: ProjectionBackend<Tx>;
  model: CounterModel<Tx>;
  /** Releases what the environment holds (called after each case, once its runners are stopped). */
  close(): Promise<void>;
}

/** Names used by one case only, so cases can share an environment. */
export interface CaseNames {
  /** A projection name. */
  projection: string;
  /** A stream category: stream ids are `${category}-…`. */
  category: string;
  /** The event type the case's projection handles. */
  type: string;
  /** An event type the case's projection does not handle. */
  otherType: string;
}

export interface ProjectionCaseContext<Tx> {
  store: EventStore;
  backend: ProjectionBackend<Tx>;
  model: CounterModel<Tx>;
  /**
   * A runner on the environment's backend, with a short idle check and short
   * backoffs unless `options` says otherwise. It is stopped after the case.
   */
  createRunner(projections: readonly Projection<Tx>[], options?: ProjectionRunnerOptions): ProjectionRunner;
  names(label?: string): CaseNames;
}

export interface ProjectionConformanceCase {
  name: string;
  /** Why the case cannot run on `backend` (a capability it lacks: the case shows as skipped), or false. */
  requires?: (backend: ProjectionBackend<unknown>) => string | false;
  run<Tx>(context: ProjectionCaseContext<Tx>): Promise<void>;
}
