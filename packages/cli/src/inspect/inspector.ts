import type { DeadLetter, DeadLetterFilter, EventMetadata, TraceTree } from '@factline/core';

/** One stream as `streams ls` shows it. */
export interface StreamSummary {
  streamId: string;
  category: string;
  /** The version after its last event. */
  version: number;
  events: number;
  lastRecordedAt: Date;
}

/** An event as stored (its data at its stored schema version, not upcast: the CLI has no registry). */
export interface StoredEvent {
  position: number;
  id: string;
  streamId: string;
  streamVersion: number;
  type: string;
  schemaVersion: number;
  data: unknown;
  metadata: EventMetadata;
  recordedAt: Date;
  /**
   * A column of the row that is not JSON (a hand edit of a SQLite file: its
   * `metadata` may even hold JSON5, which SQLite's JSON functions accept),
   * with the parser's complaint. `data` then holds the column's text as
   * stored, `metadata` `{}`. Absent when the row reads.
   */
  notJson?: { column: 'data' | 'metadata'; problem: string };
}

/** What is wrong with the event's row, `data is not JSON (…)`; `undefined` when it reads. */
export const notJsonProblem = (e: StoredEvent): string | undefined =>
  e.notJson && `${e.notJson.column} is not JSON (${e.notJson.problem})`;

/**
 * An event row's data and metadata parsed; a column that is not JSON never
 * throws: it is named in `notJson` (the data's text kept as stored), so one
 * bad row cannot fail a listing.
 *
 * @example
 * parseEventColumns('{"message": oops', '{}'); // { data: '{"message": oops', metadata: {}, notJson: { column: 'data', … } }
 */
export function parseEventColumns(data: string, metadata: string): Pick<StoredEvent, 'data' | 'metadata' | 'notJson'> {
  const parsed: Pick<StoredEvent, 'data' | 'metadata' | 'notJson'> = { data, metadata: {} };
  try {
    parsed.data = JSON.parse(data);
  } catch (error) {
    parsed.notJson = { column: 'data', problem: (error as Error).message };
  }
  try {
    parsed.metadata = JSON.parse(metadata) as EventMetadata;
  } catch (error) {
    parsed.notJson ??= { column: 'metadata', problem: (error as Error).message };
  }
  return parsed;
}

export interface OutboxTopicStatus {
  topic: string;
  waiting: number;
  oldestEnqueuedAt: Date;
  /** The oldest entry's age, ms, by the clock that wrote its enqueue time (PostgreSQL: the server's). */
  oldestAgeMs: number;
}

export interface OutboxStatus {
  /** `false` when the database holds no outbox table. */
  present: boolean;
  waiting: number;
  oldestEnqueuedAt: Date | null;
  /** The oldest entry's age, ms, as `OutboxTopicStatus.oldestAgeMs`; null when none waits. */
  oldestAgeMs: number | null;
  topics: OutboxTopicStatus[];
}

/** A projection's persistent state: its checkpoint against the log's head. */
export interface ProjectionState {
  name: string;
  position: number;
  head: number;
  /** Events of the log past the checkpoint (of any type: not all may concern the projection). */
  lag: number;
  updatedAt: Date;
  /** How long ago the checkpoint was written, ms, by the clock that wrote `updatedAt` (PostgreSQL: the server's). */
  checkpointAgeMs: number;
  liveVersion: number;
  parked: number;
  /** Paused on the database (`projections pause`): running runners hold before their next batch. */
  paused: boolean;
}

/**
 * What the read commands ask of a database. Each backend reads its adapter's
 * tables through a read-only connection: never a migration, never a lock an
 * application's write would wait on.
 */
export interface Inspector {
  /** Streams by id after `after` (keyset paging), of one category, or whose id starts with `prefix`. */
  listStreams(options: { limit: number; after?: string; category?: string; prefix?: string }): Promise<StreamSummary[]>;
  /** `undefined` when the stream has no events. */
  readStream(streamId: string, options: { from: number; limit: number }): Promise<StoredEvent[] | undefined>;
  /** Events after `position`, in log order. */
  readAll(position: number, limit: number): Promise<StoredEvent[]>;
  headPosition(): Promise<number>;
  outboxStatus(): Promise<OutboxStatus>;
  projections(): Promise<ProjectionState[]>;
  deadLetters(filter: DeadLetterFilter): Promise<DeadLetter[]>;
  deadLetter(id: string): Promise<DeadLetter | undefined>;
  /** The causal tree of `correlationId`, at most `limit` nodes (default 1000, at most 100,000). */
  trace(correlationId: string, options?: { limit?: number }): Promise<TraceTree>;
  /**
   * The stream ids of workflow instances (of one workflow), by id: at most
   * `page.limit`, after the stream id `page.after` (keyset paging).
   */
  workflowInstances(workflow: string | undefined, page: { after?: string; limit: number }): Promise<string[]>;
  close(): Promise<void>;
}

/** What `projections pause|resume` change, through a read-write connection. */
export interface ProjectionControl {
  /** Whether a checkpoint of `name` (any version) exists: a runner has run it on this database. */
  exists(name: string): Promise<boolean>;
  setPaused(name: string, paused: boolean): Promise<void>;
  /**
   * Asks the runner of `version` (default: the live one, read as the request
   * is written) for a rebuild; resolves with the request's time and the
   * version it names.
   */
  requestRebuild(name: string, version?: number): Promise<{ requestedAt: number; version: number }>;
  /** The pending request's time (null once a runner took it), `version`'s checkpoint and the log's head. */
  rebuildProgress(
    name: string,
    version: number,
  ): Promise<{ requestedAt: number | null; position: number; head: number }>;
  close(): Promise<void>;
}

/** What `dlq ls|show` read: a database's dead letters, or a Redis application's. */
export interface DeadLetterReader {
  list(filter: DeadLetterFilter): Promise<DeadLetter[]>;
  get(id: string): Promise<DeadLetter | undefined>;
}

/** A database's dead letters, read through its inspector. */
export const deadLetterReaderOf = (inspector: Inspector): DeadLetterReader => ({
  list: (filter) => inspector.deadLetters(filter),
  get: (id) => inspector.deadLetter(id),
});

/** What `dlq redrive|discard` change, through a read-write connection. */
export interface DeadLetterOperator extends DeadLetterReader {
  /** Why `record` cannot be redriven here (its group has no queue on the database's transport), or undefined. */
  cannotRedrive(record: DeadLetter): Promise<string | undefined>;
  /**
   * Puts the message back in its consumer group's queue, then marks the
   * record redriven (`redriveDeadLetter`): a send that fails leaves the
   * record dead and rejects. Resolves whether the record was redriven: one
   * changed since it was read (dead again with a newer failure, or redriven
   * or discarded elsewhere) is left as it is, its message not sent.
   */
  redrive(record: DeadLetter, at: Date): Promise<boolean>;
  /** Marks `record` discarded; resolves false, writing nothing, when it changed since it was read. */
  discard(record: DeadLetter): Promise<boolean>;
  close(): Promise<void>;
}
