import type { DeadLetter } from '../messaging/consumer-ports.ts';
import type { Message } from '../messaging/message.ts';
import type {
  TracedEvent,
  TracedHandling,
  TracedOutboxEntry,
  TracedQueuedMessage,
  TraceSources,
} from './trace-sources.ts';
import type { TraceNode, TraceTree } from './trace-tree.ts';

export interface BuildTraceSettings {
  limit: number;
  /** A source held more rows than were read: the tree is truncated whatever its size. */
  truncated?: boolean;
  /** Tells a queued message in delivery from one waiting. Default `Date.now`. */
  now?: () => number;
}

/** Everything known about one event or message id. */
interface Subject {
  id: string;
  event?: TracedEvent;
  message?: Message;
  topic?: string;
  outbox?: TracedOutboxEntry;
  queued: TracedQueuedMessage[];
  deadLetters: DeadLetter[];
}

const iso = (date: Date | undefined) =>
  date === undefined || Number.isNaN(date.getTime()) ? null : date.toISOString();
/** `{ [name]: iso }`, or nothing for an invalid date: the tree holds no `undefined` (it is plain JSON). */
const optionalTime = <K extends string>(name: K, date: Date) => {
  const text = iso(date);
  return (text === null ? {} : { [name]: text }) as Partial<Record<K, string>>;
};
const kindRank: Record<TraceNode['kind'], number> = {
  event: 0,
  message: 0,
  outbox: 0,
  queued: 1,
  handled: 1,
  'dead-letter': 1,
  redrive: 1,
  gap: 2,
};
const byTime = (a: TraceNode, b: TraceNode) => {
  const at = (n: TraceNode) => (n.at === null ? Number.POSITIVE_INFINITY : Date.parse(n.at));
  return (
    at(a) - at(b) ||
    (a.position ?? 0) - (b.position ?? 0) ||
    kindRank[a.kind] - kindRank[b.kind] ||
    (a.group ?? '').localeCompare(b.group ?? '') ||
    a.id.localeCompare(b.id)
  );
};

/**
 * Links what an adapter read about one correlation id into its causal tree:
 * one node per event or message id, its outcomes (queued copies, inbox marks,
 * dead letters with their redrives) and what it caused beneath it, gaps where
 * the database holds no parent or no handling. Keeps the first `limit` nodes,
 * breadth first in time order.
 *
 * @example
 * const tree = buildTraceTree('checkout-1', { events, outbox: [], queued: [], deadLetters: [], handled }, { limit: 1000 });
 */
export function buildTraceTree(correlationId: string, sources: TraceSources, settings: BuildTraceSettings): TraceTree {
  const now = settings.now ?? Date.now;
  const subjects = collectSubjects(sources);
  const handled = groupBy(sources.handled, (h) => h.messageId);

  // Subjects by the id that caused them; those whose cause is not held wait under a gap.
  const caused = new Map<string, Subject[]>();
  const rootSubjects: Subject[] = [];
  const missing = new Map<string, Subject[]>();
  for (const subject of subjects.values()) {
    const cause = causationOf(subject);
    if (cause === undefined || cause === subject.id) rootSubjects.push(subject);
    else if (subjects.has(cause)) push(caused, cause, subject);
    else push(missing, cause, subject);
  }

  const visited = new Set<string>();
  /** `subject`'s node with its outcomes; what it caused is added by `treeOf`. */
  const nodeOf = (subject: Subject): TraceNode => {
    visited.add(subject.id);
    const node = subjectNode(subject);
    const outcomes = outcomeNodes(subject, handled.get(subject.id) ?? [], now());
    if (outcomes.length === 0 && node.kind !== 'outbox') {
      outcomes.push(
        gap(subject.id, 'not-handled', 'no handling recorded: not handled yet, no consumer, or no durable inbox'),
      );
    }
    node.children = outcomes.sort(byTime);
    return node;
  };
  /** `top`'s node and everything it caused beneath it, from a work list: a causal chain may be any number of hops deep. */
  const treeOf = (top: Subject): TraceNode => {
    const root = nodeOf(top);
    const pending: [Subject, TraceNode][] = [[top, root]];
    for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
      const [subject, node] = next;
      const children = (caused.get(subject.id) ?? [])
        .filter((s) => !visited.has(s.id))
        .map((s) => {
          const child = nodeOf(s);
          pending.push([s, child]);
          return child;
        });
      node.children = node.children.concat(children.sort(byTime));
    }
    return root;
  };

  const roots: TraceNode[] = rootSubjects.map(treeOf);
  for (const [cause, orphans] of missing) {
    const node = gap(cause, 'missing-parent', 'not in the store, the outbox, the transport or the dead letters');
    const marks = (handled.get(cause) ?? []).map(handledNode).sort(byTime);
    node.children = [...marks, ...orphans.map(treeOf).sort(byTime)];
    roots.push(node);
  }
  // A causation cycle (corrupt metadata) reaches no root: its members become roots, each shown once.
  for (const subject of subjects.values()) if (!visited.has(subject.id)) roots.push(treeOf(subject));
  roots.sort(byTime);

  const total = countNodes(roots);
  const kept = keepFirst(roots, settings.limit);
  const times = collectTimes(kept);
  return {
    correlationId,
    found: subjects.size > 0,
    truncated: total > settings.limit || settings.truncated === true,
    nodeCount: Math.min(total, settings.limit),
    limit: settings.limit,
    startedAt: times.length > 0 ? new Date(times.reduce((a, b) => Math.min(a, b))).toISOString() : null,
    roots: kept,
  };
}

function collectSubjects(sources: TraceSources): Map<string, Subject> {
  const subjects = new Map<string, Subject>();
  const subject = (id: string) => {
    let found = subjects.get(id);
    if (!found) {
      found = { id, queued: [], deadLetters: [] };
      subjects.set(id, found);
    }
    return found;
  };
  for (const event of sources.events) subject(event.id).event = event;
  for (const entry of sources.outbox) subject(entry.message.id).outbox = entry;
  for (const row of sources.queued) {
    const s = subject(row.message.id);
    s.message ??= row.message;
    s.topic ??= row.topic;
    s.queued.push(row);
  }
  for (const record of sources.deadLetters) {
    const s = subject(record.message.id);
    s.message ??= record.message;
    s.topic ??= record.topic;
    s.deadLetters.push(record);
  }
  return subjects;
}

const metadataOf = (s: Subject) => s.event?.metadata ?? s.message?.metadata ?? s.outbox?.message.metadata ?? {};
const causationOf = (s: Subject) => metadataOf(s).causationId;

function subjectNode(s: Subject): TraceNode {
  const { correlationId, causationId } = metadataOf(s);
  const ids = {
    ...(correlationId === undefined ? {} : { correlationId }),
    ...(causationId === undefined ? {} : { causationId }),
  };
  if (s.event) {
    const e = s.event;
    return {
      kind: 'event',
      id: s.id,
      type: e.type,
      at: iso(e.recordedAt),
      status: 'stored',
      stream: e.streamId,
      streamVersion: e.streamVersion,
      position: e.position,
      ...ids,
      children: [],
    };
  }
  if (s.message) {
    const topic = s.topic ?? s.outbox?.topic;
    return {
      kind: 'message',
      id: s.id,
      type: s.message.type,
      at: iso(s.message.createdAt),
      status: 'published',
      ...(topic === undefined ? {} : { topic }),
      ...ids,
      children: [],
    };
  }
  const entry = s.outbox as TracedOutboxEntry;
  return {
    kind: 'outbox',
    id: s.id,
    type: entry.message.type,
    at: iso(entry.enqueuedAt),
    status: 'waiting',
    topic: entry.topic,
    ...ids,
    children: [],
  };
}

function outcomeNodes(s: Subject, marks: readonly TracedHandling[], now: number): TraceNode[] {
  const queued = s.queued.map(
    (row): TraceNode => ({
      kind: 'queued',
      id: s.id,
      type: row.message.type,
      at: null,
      status: row.leased && row.visibleAt.getTime() > now ? 'in-delivery' : 'waiting',
      topic: row.topic,
      group: row.group,
      deliveryCount: row.deliveryCount,
      ...optionalTime('visibleAt', row.visibleAt),
      children: [],
    }),
  );
  return [...queued, ...marks.map(handledNode), ...s.deadLetters.map(deadLetterNode)];
}

function handledNode(mark: TracedHandling): TraceNode {
  return { kind: 'handled', id: mark.messageId, at: iso(mark.at), status: 'handled', group: mark.group, children: [] };
}

function deadLetterNode(record: DeadLetter): TraceNode {
  return {
    kind: 'dead-letter',
    id: record.message.id,
    type: record.message.type,
    at: iso(record.deadLetteredAt),
    status: record.state,
    topic: record.topic,
    group: record.consumer,
    deadLetterId: record.id,
    error: { type: record.error.type, message: record.error.message },
    attempts: record.attempts,
    reason: record.reason,
    ...optionalTime('firstFailureAt', record.firstFailureAt),
    children: record.redrives.map(
      (at): TraceNode => ({
        kind: 'redrive',
        id: record.message.id,
        at: iso(at),
        status: 'redriven',
        topic: record.topic,
        group: record.consumer,
        children: [],
      }),
    ),
  };
}

function gap(id: string, status: 'missing-parent' | 'not-handled', note: string): TraceNode {
  return { kind: 'gap', id, at: null, status, note, children: [] };
}

/** Every node of the forest, parents before children (a work list, not recursion). */
function allNodes(roots: readonly TraceNode[]): TraceNode[] {
  const nodes = [...roots];
  for (let i = 0; i < nodes.length; i++) for (const child of (nodes[i] as TraceNode).children) nodes.push(child);
  return nodes;
}

function countNodes(roots: readonly TraceNode[]): number {
  return allNodes(roots).length;
}

/** The first `limit` nodes breadth first (parents before children, earlier before later). */
function keepFirst(roots: TraceNode[], limit: number): TraceNode[] {
  const copies = new Map<TraceNode, TraceNode>();
  const kept = allNodes(roots).slice(0, limit);
  for (const node of kept) copies.set(node, { ...node, children: [] });
  for (const node of kept) {
    const copy = copies.get(node) as TraceNode;
    for (const child of node.children) {
      const kid = copies.get(child);
      if (kid !== undefined) copy.children.push(kid);
    }
  }
  return roots.filter((n) => copies.has(n)).map((n) => copies.get(n) as TraceNode);
}

function collectTimes(nodes: readonly TraceNode[]): number[] {
  const times: number[] = [];
  for (const node of allNodes(nodes)) if (node.at !== null) times.push(Date.parse(node.at));
  return times;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) push(groups, key(item), item);
  return groups;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
