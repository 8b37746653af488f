/** @jsxImportSource hono/jsx */
import type { TraceNode, TraceTree } from '@factline/core';
import { Layout, query, Time } from '../layout.tsx';

/** Milliseconds after the operation started, `+12 ms`. */
function offset(at: string | null, startedAt: string | null): string {
  if (at === null || startedAt === null) return '';
  return `+${Date.parse(at) - Date.parse(startedAt)} ms`;
}

function What(props: { node: TraceNode }) {
  const n = props.node;
  if (n.kind === 'event' && n.position !== undefined) {
    return (
      <a class="mono" href={`/events/${n.position}`}>
        {n.type} {n.stream}@{n.streamVersion}
      </a>
    );
  }
  if (n.kind === 'dead-letter' && n.deadLetterId !== undefined) {
    return (
      <span>
        <a href={`/dead-letters/${encodeURIComponent(n.deadLetterId)}`}>{n.group}</a>: {n.error?.message ?? n.reason}
      </span>
    );
  }
  if (n.kind === 'gap') return <span class="muted">{n.note ?? n.id}</span>;
  return (
    <span>
      {n.type ?? ''} {n.group ?? n.topic ?? ''}
    </span>
  );
}

function Node(props: { node: TraceNode; startedAt: string | null }) {
  const n = props.node;
  return (
    <li data-kind={n.kind}>
      <span class="kind">{n.kind}</span> <What node={n} /> <span class={`status-${n.status}`}>{n.status}</span>{' '}
      <span class="at">
        {offset(n.at, props.startedAt)} <Time at={n.at} />
      </span>
      {n.children.length > 0 ? (
        <ul>
          {n.children.map((child) => (
            <Node node={child} startedAt={props.startedAt} />
          ))}
        </ul>
      ) : null}
    </li>
  );
}

/** The causal tree of one correlation id, each node with its time after the operation's start. */
export function TracePage(props: { correlationId: string; tree?: TraceTree }) {
  const tree = props.tree;
  return (
    <Layout title={props.correlationId ? `Trace ${props.correlationId}` : 'Trace'} section="trace">
      <form method="get" action="/trace">
        <input name="correlationId" value={props.correlationId} aria-label="correlation id to trace" />{' '}
        <button type="submit">Trace</button>
      </form>
      {tree === undefined ? null : !tree.found ? (
        <p class="muted">Nothing carries this correlation id.</p>
      ) : (
        <>
          <p class="muted">
            {tree.nodeCount} nodes from <Time at={tree.startedAt} />
            {tree.truncated ? ` (truncated at ${tree.limit})` : ''} ·{' '}
            <a href={`/trace.json${query({ correlationId: props.correlationId })}`}>JSON</a>
          </p>
          <ul class="tree">
            {tree.roots.map((root) => (
              <Node node={root} startedAt={tree.startedAt} />
            ))}
          </ul>
        </>
      )}
    </Layout>
  );
}
