import type { Inspector, StoredEvent } from '../inspect/inspector.ts';
import { type InstanceState, summarizeInstance, type WorkflowInstanceSummary } from './instance-summary.ts';

const page = 1000;

/** Every recorded event of a stream, in order; `undefined` when it has none. */
export async function readWholeStream(inspector: Inspector, streamId: string): Promise<StoredEvent[] | undefined> {
  const events: StoredEvent[] = [];
  for (;;) {
    const batch = await inspector.readStream(streamId, { from: events.length + 1, limit: page });
    if (batch === undefined) return undefined;
    events.push(...batch);
    if (batch.length < page) return events;
  }
}

/**
 * The instance `<workflow>-<instanceId>` with its recorded events (its timers
 * overdue at `now` counted); `undefined` when no such stream exists or it is
 * not a workflow instance.
 *
 * @example
 * const found = await readInstance(inspector, 'shipping', 'A1');
 */
export async function readInstance(
  inspector: Inspector,
  workflow: string,
  instanceId: string,
  now = Date.now(),
): Promise<{ summary: WorkflowInstanceSummary; events: StoredEvent[] } | undefined> {
  const streamId = `${workflow}-${instanceId}`;
  const events = await readWholeStream(inspector, streamId);
  if (!events?.[0]?.type.startsWith('$workflow.')) return undefined;
  return { summary: summarizeInstance(streamId, events, now), events };
}

/** One page of instances, and the stream id the next page starts after (none when this one is the last). */
export interface InstancePage {
  instances: WorkflowInstanceSummary[];
  next: string | undefined;
}

/** Instance ids read per query: a state filter may look at many instances to fill one page. */
const idsPerQuery = 200;

/**
 * Workflow instances by stream id, of one workflow and in one state when
 * asked, at most `limit` of them, starting after the stream id `after`. Ids
 * are read a bounded batch at a time and each instance's stream once, so a
 * page costs the instances it looks at, never the whole store.
 *
 * @example
 * const { instances, next } = await listInstances(inspector, { state: 'parked', limit: 50 });
 */
export async function listInstances(
  inspector: Inspector,
  options: { workflow?: string; state?: InstanceState; limit: number; after?: string; now?: number },
): Promise<InstancePage> {
  const instances: WorkflowInstanceSummary[] = [];
  const batch = Math.max(options.limit, idsPerQuery);
  let after = options.after;
  for (;;) {
    const ids = await inspector.workflowInstances(options.workflow, {
      ...(after === undefined ? {} : { after }),
      limit: batch,
    });
    for (const streamId of ids) {
      const events = await readWholeStream(inspector, streamId);
      if (!events) continue;
      const summary = summarizeInstance(streamId, events, options.now);
      if (options.state === undefined || summary.state === options.state) instances.push(summary);
      if (instances.length === options.limit) return { instances, next: streamId };
    }
    if (ids.length < batch) return { instances, next: undefined };
    after = ids.at(-1);
  }
}
