import type { DeadLetterStore } from '@factline/core';
import type { BufferedEntry } from '@factline/core/adapter';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { NatsErrorStage } from '../options.ts';
import type { Names } from '../topology.ts';
import type { PartitionGate } from './partition-gate.ts';

// The group reader's types (group-reader.ts): what it holds, what it needs, its state per partition.

/** One message a group reader holds (unacknowledged at the server) until it is acked or naked. */
export interface Entry extends BufferedEntry {
  raw: JsMsg;
  /** Its stream sequence (read once from the delivery's reply subject). */
  seq: number;
  /** The claim on its partition it came under; a later claim (or none) means it may be someone else's now. */
  epoch: number;
}

/** What a group reader needs from its transport. */
export interface ReaderContext {
  names: Names;
  topic: string;
  group: string;
  partitions: number;
  prefetch: number;
  maxDeliver: number;
  ackWaitMs: number;
  deadLetters: DeadLetterStore | undefined;
  js(): JetStreamClient;
  /** Creates the partition's durable consumer (again, if it was deleted). */
  /** `again`: created again even when this process made it before (it was found missing). */
  ensureConsumer(partition: number, again?: boolean): Promise<void>;
  /** Reads the consumer's `num_ack_pending` and the last stream sequence it delivered. */
  pending(partition: number): Promise<{ ackPending: number; deliveredSeq: number }>;
  report(error: unknown, stage: NatsErrorStage): void;
  /** False while the client reconnects: an ack sent then may never reach the server. */
  connected(): boolean;
}

/** One partition's pull loop state while this process holds it. */
export interface Held {
  epoch: number;
  gate: PartitionGate;
  loop: Promise<void>;
  /** The pull under way, stopped by `regate`. */
  batch: { stop(): void } | undefined;
  /** Set after a reconnect: the next turn gets the consumer again and closes the gate. */
  regate: boolean;
  /** When the last pull went out while the gate held `prefetch` messages or more (one a second then). */
  fullPullAt: number;
  /**
   * The highest delivery sequence of the consumer seen under this holding: it grows with every delivery
   * (redeliveries too), so a lower or equal one is of a consumer made again (with the stream, maybe).
   */
  delivered: number;
}
