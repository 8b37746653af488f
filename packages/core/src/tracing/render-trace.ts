import type { TraceNode, TraceTree } from './trace-tree.ts';

/** The most levels of indentation a line gets (three columns each); a node deeper in the tree (roots are depth 1) carries its depth. */
export const MAX_INDENTED_DEPTH = 40;

/**
 * The tree as indented text for a terminal: one line per node, its time in
 * ms after the operation's first node, a last line when the tree was cut.
 * Indentation stops at `MAX_INDENTED_DEPTH` (40) levels: a node deeper
 * than that is drawn at that indentation with its depth
 * (`└─ [depth 42] event …`), so the text grows with the nodes, not with
 * their depth squared.
 *
 * @example
 * console.log(renderTraceTree(await tracer.traceOperation('checkout-1001')));
 * // trace checkout-1001: 6 nodes from 2025-03-01T09:00:00.000Z
 * // └─ event OrderPlaced order-1001@1 #1 id 0195…  +0 ms
 * //    ├─ handled by inventory  +31 ms
 * //    └─ dead-lettered by notification after 1 attempt (not retryable): Error: no address  +33 ms
 */
export function renderTraceTree(tree: TraceTree): string {
  if (!tree.found) return `trace ${tree.correlationId}: nothing carries this correlation id`;
  const origin = tree.startedAt === null ? null : Date.parse(tree.startedAt);
  const lines = [`trace ${tree.correlationId}: ${tree.nodeCount} nodes from ${tree.startedAt ?? 'an unknown time'}`];
  // A work list, not recursion: a causal chain may be any number of levels deep.
  const pending: { node: TraceNode; indent: string; depth: number; last: boolean }[] = [];
  const schedule = (nodes: readonly TraceNode[], indent: string, depth: number) => {
    for (let i = nodes.length - 1; i >= 0; i--)
      pending.push({ node: nodes[i] as TraceNode, indent, depth, last: i === nodes.length - 1 });
  };
  schedule(tree.roots, '', 1);
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { node, indent, depth, last } = next;
    const time = node.at === null || origin === null ? '' : `  +${Date.parse(node.at) - origin} ms`;
    const deep = depth > MAX_INDENTED_DEPTH ? `[depth ${depth}] ` : '';
    lines.push(`${indent}${last ? '└─ ' : '├─ '}${deep}${describeNode(node, origin)}${time}`);
    // Past the cap, children are drawn at their parent's indentation: the depth in brackets tells them apart.
    const childIndent = depth <= MAX_INDENTED_DEPTH ? `${indent}${last ? '   ' : '│  '}` : indent;
    schedule(node.children, childIndent, depth + 1);
  }
  if (tree.truncated) lines.push(`… truncated: more than ${tree.limit} nodes (raise \`limit\` to see more)`);
  return lines.join('\n');
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** One node as words. */
function describeNode(node: TraceNode, origin: number | null): string {
  switch (node.kind) {
    case 'event':
      return `event ${node.type} ${node.stream}@${node.streamVersion} #${node.position} id ${node.id}`;
    case 'message':
      return `message ${node.type}${node.topic ? ` on ${node.topic}` : ''} id ${node.id}`;
    case 'outbox':
      return `outbox ${node.type} → ${node.topic}: waiting for the relay, id ${node.id}`;
    case 'queued': {
      const visible =
        node.visibleAt === undefined || origin === null
          ? ''
          : `, visible at +${Date.parse(node.visibleAt) - origin} ms`;
      const state = node.status === 'in-delivery' ? 'in delivery' : 'waiting';
      return `queued for ${node.group} on ${node.topic}: ${state}, delivered ${node.deliveryCount ?? 0}×${visible}`;
    }
    case 'handled':
      return `handled by ${node.group}`;
    case 'dead-letter': {
      const state = node.status === 'dead' ? '' : ` [${node.status}]`;
      return `dead-lettered by ${node.group} after ${plural(node.attempts ?? 0, 'attempt')} (${node.reason}): ${node.error?.type}: ${node.error?.message}${state}`;
    }
    case 'redrive':
      return `redriven to ${node.group}`;
    case 'gap':
      return node.status === 'missing-parent'
        ? `? missing parent ${node.id}: ${node.note}`
        : `? not handled: ${node.note}`;
  }
}
