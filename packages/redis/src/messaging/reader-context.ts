import type { RedisClient } from '../connection.ts';
import type { RedisKeys } from '../keys.ts';
import type { RedisErrorStage } from '../options.ts';
import type { Entry } from './receive.ts';

/** How a delayed release went (`ReaderContext.delay`). */
export type DelayOutcome = 'moved' | 'fenced' | 'ran-out' | 'gone' | 'failed';

/** What a group reader needs from its transport. */
export interface ReaderContext {
  keys: RedisKeys;
  /** Which server the transport talks to (`serverIdentity`): the Redis inbox acks with its mark only on the same. */
  server: string;
  topic: string;
  group: string;
  partitions: number;
  prefetch: number;
  leaseMs: number;
  blockMs: number;
  trimIntervalMs: number;
  consumerIdleMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** This reader's consumer name in every stream's group, and its lease value: unique per process and reader. */
  consumer: string;
  /** The transport's shared connection (commands that do not block). */
  client: RedisClient;
  /** Opens a connection of the reader's own, for the blocking `XREADGROUP`. */
  openBlocking(): Promise<RedisClient>;
  /** Declares the group on every partition stream (again after a server lost it). */
  declare(again: boolean): Promise<void>;
  /**
   * Acks the entry and schedules its copy for the group alone at `dueAt`, while the reader holds the partition's
   * lease: `moved`; `fenced` when another reader holds it, `ran-out` when none does (it expired; nothing done
   * either way); `gone` when the entry was no longer pending (nothing done, told); `failed` when Redis could not
   * be asked (told).
   */
  delay(entry: Entry, dueAt: number): Promise<DelayOutcome>;
  report(error: unknown, stage: RedisErrorStage): void;
}
