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
 * The instance `<workflow>-<instanceId>` with its recorded events; `undefined`
 * when no such stream exists or it is not a workflow instance.
 *
 * @example
 * const found = await readInstance(inspector, 'shipping', 'A1');
 */
export async function readInstance(
  inspector: Inspector,
  workflow: string,
  instanceId: string,
): Promise<{ summary: WorkflowInstanceSummary; events: StoredEvent[] } | undefined> {
  const streamId = `${workflow}-${instanceId}`;
  const events = await readWholeStream(inspector, streamId);
  if (!events?.[0]?.type.startsWith('$workflow.')) return undefined;
  return { summary: summarizeInstance(streamId, events), events };
}

/**
 * Workflow instances by stream id, of one workflow and in one state when
 * asked, at most `limit` of them.
 *
 * @example
 * const parked = await listInstances(inspector, { state: 'parked', limit: 50 });
 */
export async function listInstances(
  inspector: Inspector,
  options: { workflow?: string; state?: InstanceState; limit: number },
): Promise<WorkflowInstanceSummary[]> {
  const found: WorkflowInstanceSummary[] = [];
  for (const streamId of await inspector.workflowInstances(options.workflow)) {
    if (found.length >= options.limit) break;
    const events = await readWholeStream(inspector, streamId);
    if (!events) continue;
    const summary = summarizeInstance(streamId, events);
    if (options.state === undefined || summary.state === options.state) found.push(summary);
  }
  return found;
}
