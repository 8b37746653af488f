import type { Attributes, BatchObservableResult } from '@opentelemetry/api';
import { type Logger, log } from '../logging/logger.ts';
import { type FactlineInstruments, sharedObservation } from '../tracing/metrics.ts';
import type { DeadLetterStore } from './consumer-ports.ts';
import type { Transport, TransportBacklog } from './transport.ts';

/** One consumer, as the process's consumer points read it. */
export interface ObservedConsumer {
  name: string;
  topic: string;
  /** Its live counts (read at each collection). */
  stats: { readonly handled: number; readonly retries: number; readonly deadLettered: number };
  transport: Transport;
  deadLetterStore: () => Promise<DeadLetterStore>;
  logger: Logger | undefined;
  now: () => number;
}

/** The consumers of one group on one topic: they share one set of points. */
interface Group {
  name: string;
  topic: string;
  /** Every consumer of the group started while one of them ran: the stopped ones' counts stay in the sums. */
  members: Set<ObservedConsumer>;
  running: Set<ObservedConsumer>;
}

/**
 * The groups of this process with a consumer running, by group and topic.
 * Two consumers of one group and topic observe the same attributes, so one
 * callback reports them all: two callbacks observing the same point would
 * each replace the other's value.
 */
const groups = new Map<string, Group>();
/** The callback reporting every group, registered while a consumer runs. */
const hold = sharedObservation(
  (i) => [i.handled, i.retries, i.deadLettered, i.deadLetterDepth, i.consumerLag, i.consumerLagDuration],
  async (i, result) => {
    await Promise.all([...groups.values()].map((group) => observeGroup(i, result, group)));
  },
);

const groupKey = (consumer: ObservedConsumer) => JSON.stringify([consumer.name, consumer.topic]);

/**
 * Registers a running consumer's points, read at each collection from its
 * stats and its group's backlog and dead letters (no cost per message). The
 * consumers of one group and topic in the process share their points:
 * `handled`, `retries` and `dead_lettered` are the sums of their counts (a
 * stopped one's count kept while another runs), the lag and dead-letter
 * depth are read once per transport and per dead-letter store they use
 * (summed; the lag's age is the oldest of any). A failed read is told to
 * that consumer's logger and leaves those points out. Returns the
 * consumer's removal; `observeConsumer` again after it (a restart) counts
 * it once.
 *
 * @example
 * const unobserve = observeConsumer({ name, topic, stats, transport, deadLetterStore, logger, now });
 */
export function observeConsumer(consumer: ObservedConsumer): () => void {
  const key = groupKey(consumer);
  let group = groups.get(key);
  if (group === undefined) {
    group = { name: consumer.name, topic: consumer.topic, members: new Set(), running: new Set() };
    groups.set(key, group);
  }
  group.members.add(consumer);
  group.running.add(consumer);
  const release = hold();
  const joined = group;
  return () => {
    if (!joined.running.delete(consumer)) return;
    release();
    // The group's last consumer stopped: its points end.
    if (joined.running.size === 0) groups.delete(key);
  };
}

const warn = (consumer: ObservedConsumer, err: unknown, what: string) =>
  log(
    consumer.logger,
    'warn',
    { consumer: consumer.name, topic: consumer.topic, err },
    `consumer ${consumer.name}: reading ${what} failed`,
  );

/** One group's points: its counts, its lag and its dead letters. */
async function observeGroup(i: FactlineInstruments, result: BatchObservableResult, group: Group): Promise<void> {
  const attributes = { 'messaging.consumer.group.name': group.name, 'messaging.destination.name': group.topic };
  const members = [...group.members];
  const sum = (count: (stats: ObservedConsumer['stats']) => number) =>
    members.reduce((total, member) => total + count(member.stats), 0);
  result.observe(
    i.handled,
    sum((s) => s.handled),
    attributes,
  );
  result.observe(
    i.retries,
    sum((s) => s.retries),
    attributes,
  );
  result.observe(
    i.deadLettered,
    sum((s) => s.deadLettered),
    attributes,
  );
  const running = [...group.running];
  await Promise.all([
    observeLag(i, result, attributes, running),
    observeDeadLetterDepth(i, result, attributes, running),
  ]);
}

/** The group's backlog on each transport its running consumers use, where the transport tells it. */
async function observeLag(
  i: FactlineInstruments,
  result: BatchObservableResult,
  attributes: Attributes,
  running: ObservedConsumer[],
): Promise<void> {
  const byTransport = new Map<Transport, ObservedConsumer>();
  for (const c of running)
    if (typeof c.transport.backlog === 'function' && !byTransport.has(c.transport)) byTransport.set(c.transport, c);
  if (byTransport.size === 0) return;
  let failed = false;
  const reads = await Promise.all(
    [...byTransport.values()].map((c) =>
      (c.transport.backlog as (topic: string, group: string) => Promise<TransportBacklog>)
        .call(c.transport, c.topic, c.name)
        .then(
          (backlog) => ({ backlog, now: c.now() }),
          (err: unknown) => {
            failed = true;
            warn(c, err, 'the backlog');
            return undefined;
          },
        ),
    ),
  );
  if (failed) return;
  let messages = 0;
  let age = 0;
  let ageUnknown = false;
  for (const read of reads) {
    if (read === undefined) continue;
    messages += read.backlog.messages;
    if (read.backlog.ageUnknown === true) ageUnknown = true;
    else {
      const { oldestAgeMs, oldestAt } = read.backlog;
      const ms = oldestAgeMs ?? (oldestAt === undefined ? undefined : read.now - oldestAt);
      if (ms !== undefined) age = Math.max(age, ms / 1000);
    }
  }
  result.observe(i.consumerLag, messages, attributes);
  if (!ageUnknown) result.observe(i.consumerLagDuration, age, attributes);
}

/** The group's dead letters waiting on the topic, in each dead-letter store its running consumers use. */
async function observeDeadLetterDepth(
  i: FactlineInstruments,
  result: BatchObservableResult,
  attributes: Attributes,
  running: ObservedConsumer[],
): Promise<void> {
  let failed = false;
  const fail = (c: ObservedConsumer) => (err: unknown) => {
    failed = true;
    warn(c, err, 'the dead letters');
    return undefined;
  };
  const stores = await Promise.all(running.map((c) => c.deadLetterStore().then((store) => ({ store, c }), fail(c))));
  const byStore = new Map<DeadLetterStore, ObservedConsumer>();
  for (const s of stores) if (s !== undefined && !byStore.has(s.store)) byStore.set(s.store, s.c);
  const counts = await Promise.all(
    [...byStore].map(([store, c]) =>
      store.list({ consumer: c.name, topic: c.topic, state: 'dead' }).then((waiting) => waiting.length, fail(c)),
    ),
  );
  if (failed) return;
  result.observe(
    i.deadLetterDepth,
    counts.reduce<number>((total, n) => total + (n ?? 0), 0),
    attributes,
  );
}
