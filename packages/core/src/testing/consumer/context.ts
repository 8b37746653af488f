import type { Consumer, ConsumerOptions } from '../../messaging/consumer.ts';
import type { DeadLetterStore, Inbox } from '../../messaging/consumer-ports.ts';
import type { Message } from '../../messaging/message.ts';
import type { Transport } from '../../messaging/transport.ts';
import { OUTAGE_SKIP_REASON } from '../outage.ts';

/**
 * What the consumer pipeline runs on in one case: a transport, optionally an
 * inbox and a dead-letter store, and a table of effects the handlers write.
 */
export interface ConsumerEnvironment<Tx = undefined> {
  transport: Transport;
  /** Default: the consumer's in-memory inbox. */
  inbox?: Inbox<Tx>;
  /** Default: an in-memory store. */
  deadLetters?: DeadLetterStore;
  /**
   * Records `value` for `consumer` through the handler's transaction `tx`
   * (synchronously where handlers must be synchronous).
   */
  writeEffect(tx: Tx, consumer: string, value: string): unknown;
  /** The committed effects of `consumer`, in the order they were written. */
  effects(consumer: string): Promise<string[]>;
  /**
   * A second transport object on the same storage, as another process would
   * open it (a second connection to the file, a second pool). Default: the
   * environment's `transport`. Closed when the case ends.
   */
  peerTransport?(): Promise<Transport>;
  close(): Promise<void>;
}

export interface ConsumerCaseContext<Tx = undefined> {
  environment: ConsumerEnvironment<Tx>;
  transactional: boolean;
  synchronousHandlers: boolean;
  handlersTakeTurns: boolean;
  /** A topic unique to this case. */
  topic: string;
  /** A consumer on the environment, with fast retries (1 immediate, then 5 ms twice); stopped after the case. */
  consumer(options: Partial<ConsumerOptions<Tx>> & Pick<ConsumerOptions<Tx>, 'handler'>): Consumer;
  /** Runs `next` after `result` (now when it is not a promise), so a handler stays synchronous where it must. */
  andThen(result: unknown, next: () => unknown): unknown;
  /** Starts a publish from a handler: awaited when handlers may await, fired otherwise. */
  publish(topic: string, messages: Message[]): unknown;
  /** The environment's `peerTransport()` (or its transport), closed after the case's consumers stopped. */
  peerTransport(): Promise<Transport>;
  /**
   * A new environment on the same storage, as after a restart (close
   * `environment` first); closed after the case.
   */
  reopen(): Promise<ConsumerEnvironment<Tx>>;
  /** The suite's `restart` option: restarts the backend (cases that call it require `'restart'`). */
  restart(): Promise<void>;
  /**
   * The suite's `outage` option: stops the backend and resolves with the call
   * that starts it again (cases that call it require `'outage'`). The suite
   * starts it again after the case if the case did not.
   */
  outage(): Promise<() => Promise<void>>;
}

/**
 * What a case needs of the environment or the suite's options. `volatile` is
 * the opposite of `durable`: a transport whose messages die with the process.
 */
export type ConsumerRequirement =
  | 'asyncHandlers'
  | 'transactional'
  | 'inbox'
  | 'durable'
  | 'volatile'
  | 'restart'
  | 'outage';

/** The skip reason shown for each requirement an environment (or the suite's options) does not meet. */
export const consumerSkipReasons: Readonly<Record<ConsumerRequirement, string>> = {
  asyncHandlers: 'handlers must be synchronous here (synchronousHandlers is set)',
  transactional: 'the inbox does not commit the handler writes with its mark (transactional is not set)',
  inbox: 'no inbox in the environment (the consumer keeps its marks in memory)',
  durable: 'the transport is not durable (capabilities.durable is false)',
  volatile: 'the transport is durable (capabilities.durable is true): the durable variant of this case runs instead',
  restart: 'no restart hook: give the suite a restart option that restarts the backend',
  outage: OUTAGE_SKIP_REASON,
};

export interface ConsumerConformanceCase {
  name: string;
  /** Skipped, with the reason from `consumerSkipReasons`, where one of these is missing. */
  requires?: readonly ConsumerRequirement[];
  // biome-ignore lint/suspicious/noExplicitAny: each case works with any transaction type
  run(context: ConsumerCaseContext<any>): Promise<void>;
}

/** The `n` a case put in a message's data. */
export const n = (m: Message) => (m.data as { n: number }).n;
