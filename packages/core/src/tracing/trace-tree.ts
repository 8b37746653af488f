/**
 * The causal tree of one business operation: everything a database holds
 * that carries one correlation id, linked by causation id. Plain JSON (times
 * are ISO strings): `traceTreeToJson(tree)` writes it for any depth, where
 * `JSON.stringify(tree)` throws on a chain a few thousand levels deep.
 */

/** What a node stands for. */
export type TraceNodeKind =
  /** An event in the store. */
  | 'event'
  /** A message known from the transport's tables or a dead letter, not stored as an event. */
  | 'message'
  /** A message in the outbox, waiting for its relay. */
  | 'outbox'
  /** A copy of a message waiting in a consumer group's queue of the transport. */
  | 'queued'
  /** An inbox mark: the group applied the message at `at`. */
  | 'handled'
  /** A dead letter: the group gave up on the message. */
  | 'dead-letter'
  /** One redrive of a dead letter back to its group. */
  | 'redrive'
  /** Something the database does not hold: a missing parent, or handling not recorded. */
  | 'gap';

export type TraceStatus =
  /** An event in the store. */
  | 'stored'
  /** A message known to have been published. */
  | 'published'
  /** In the outbox, or queued for a group and not handed out. */
  | 'waiting'
  /** Handed out to a consumer of the group, its visibility not expired. */
  | 'in-delivery'
  | 'handled'
  /** A dead letter not redriven or discarded. */
  | 'dead'
  | 'redriven'
  | 'discarded'
  /** Gap: the causation id names nothing the database holds (published and settled, or pruned). */
  | 'missing-parent'
  /** Gap: no group's handling of the message is recorded (not handled yet, no consumer, or no durable inbox). */
  | 'not-handled';

export interface TraceNode {
  kind: TraceNodeKind;
  /**
   * The event's or message's id. For `queued`, `handled`, `dead-letter` and
   * `redrive`, the id of the message they concern; for a missing-parent gap,
   * the causation id not found.
   */
  id: string;
  /** Event or message type. */
  type?: string;
  /** When: recorded, created, enqueued, handled, dead-lettered, redriven (ISO); `null` when not known. */
  at: string | null;
  status: TraceStatus;
  /** Event: its stream, version in it, and global position. */
  stream?: string;
  streamVersion?: number;
  position?: number;
  topic?: string;
  /** Consumer group (`queued`, `handled`, `dead-letter`, `redrive`). */
  group?: string;
  correlationId?: string;
  causationId?: string;
  /** Dead letter: its record id, error, handler runs and the policy's reason. */
  deadLetterId?: string;
  error?: { type: string; message: string };
  attempts?: number;
  reason?: string;
  firstFailureAt?: string;
  /** Queued: times handed out so far, and when it may be handed out (again). */
  deliveryCount?: number;
  visibleAt?: string;
  /** Gap: what is missing, for humans. */
  note?: string;
  /** Outcomes first (queued, handled, dead letters), then what the node caused; each in time order. */
  children: TraceNode[];
}

export interface TraceTree {
  correlationId: string;
  /** False when nothing carries the correlation id (the tree is empty). */
  found: boolean;
  /** True when more than `limit` nodes exist: the earliest ones are kept, breadth first. */
  truncated: boolean;
  /** Nodes in the tree, gaps included. */
  nodeCount: number;
  limit: number;
  /** The earliest time of any node (ISO), the origin of relative times. */
  startedAt: string | null;
  /** Operations usually have one root per command; parentless gaps are roots too. */
  roots: TraceNode[];
}

export interface TraceOptions {
  /** Most nodes in the tree. Default 1000, at most 100,000. */
  limit?: number;
}

/** What an adapter offers to trace operations in its database. */
export interface OperationTracer {
  /**
   * The causal tree of everything carrying `correlationId`. An unknown id
   * gives an empty tree with `found: false`; an empty or non-string id, or a
   * bad option, a `ValidationError`.
   */
  traceOperation(correlationId: string, options?: TraceOptions): Promise<TraceTree>;
}
