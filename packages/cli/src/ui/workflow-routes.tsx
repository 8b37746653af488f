/** @jsxImportSource hono/jsx */
import type { Workflow } from '@factline/core';
import type { Context, Hono } from 'hono';
import type { Inspector } from '../inspect/inspector.ts';
import { cancelInstance, retryInstance } from '../workflows/change-instance.ts';
import {
  type InstanceState,
  instanceStates,
  unreadableRecordName,
  type WorkflowInstanceSummary,
} from '../workflows/instance-summary.ts';
import type { WorkflowStore } from '../workflows/open-store.ts';
import { listInstances, readInstance } from '../workflows/read-instances.ts';
import { ConfirmWorkflowPage, type WorkflowAction, WorkflowInstancePage, WorkflowsPage } from './pages/workflows.tsx';
import type { RenderNotFound, RenderPage } from './render.tsx';
import { seenField } from './security.ts';

/** Instances on one page of the workflows list. */
const instancesPerPage = 100;

/** What the workflow pages change with: a read-write store per change, and the definitions for a retry. */
export interface WorkflowActions {
  openStore: () => Promise<WorkflowStore>;
  /** The application's definition of a workflow; without it the dashboard cannot retry. */
  loadWorkflow?: (name: string) => Promise<Workflow<unknown>>;
}

/**
 * The workflow pages: instances by state, one instance, and retry and
 * cancel behind a confirmation page (GET) and a POST with the CSRF token.
 */
export function addWorkflowRoutes(
  app: Hono,
  settings: { inspector: Inspector; csrfToken: string; workflows?: WorkflowActions },
  page: RenderPage,
  notFound: RenderNotFound,
): void {
  const { inspector } = settings;
  const canRetry = settings.workflows?.loadWorkflow !== undefined;
  const find = (c: Context) => readInstance(inspector, c.req.param('workflow') ?? '', c.req.param('id') ?? '');
  const missing = (c: Context) =>
    notFound(c, `No instance ${c.req.param('id')} of workflow ${c.req.param('workflow')}.`);
  const refusal = ({ state, unreadable }: WorkflowInstanceSummary, action: WorkflowAction) => {
    if (action === 'retry') {
      if (state !== 'parked') return `It is ${state}, not parked.`;
      // As `workflows retry` refuses it: what would be decided again cannot be told.
      return unreadable
        ? `Its ${unreadableRecordName(unreadable)} cannot be read: ${unreadable.problem}. Nothing was done.`
        : undefined;
    }
    return state === 'running' || state === 'parked' ? undefined : `It is ${state} already.`;
  };

  app.get('/workflows', async (c) => {
    const asked = c.req.query('state') ?? 'parked';
    const state = (instanceStates.includes(asked as InstanceState) ? asked : 'parked') as InstanceState;
    const after = c.req.query('after') || undefined;
    const found = await listInstances(inspector, {
      state,
      limit: instancesPerPage,
      ...(after === undefined ? {} : { after }),
    });
    return page(
      c,
      <WorkflowsPage
        instances={found.instances}
        state={state}
        {...(after === undefined ? {} : { after })}
        {...(found.next === undefined ? {} : { next: found.next })}
      />,
    );
  });
  app.get('/workflows/:workflow/:id', async (c) => {
    const found = await find(c);
    if (!found) return missing(c);
    return page(c, <WorkflowInstancePage {...found} canRetry={canRetry} />);
  });
  for (const action of ['retry', 'cancel'] as const) {
    app.get(`/workflows/:workflow/:id/${action}`, async (c) => {
      const found = await find(c);
      if (!found) return missing(c);
      const refused =
        refusal(found.summary, action) ?? (action === 'retry' && !canRetry ? 'No definitions.' : undefined);
      if (refused) return page(c, <WorkflowInstancePage {...found} canRetry={canRetry} notice={refused} />, 409);
      return page(c, <ConfirmWorkflowPage summary={found.summary} action={action} csrfToken={settings.csrfToken} />);
    });
    app.post(`/workflows/:workflow/:id/${action}`, async (c) => {
      const found = await find(c);
      if (!found) return missing(c);
      const actions = settings.workflows;
      const seen = (await c.req.parseBody())[seenField];
      const refused =
        refusal(found.summary, action) ??
        (seen !== String(found.summary.version)
          ? 'The instance changed after this page showed it: nothing was done. Here it is as it is now.'
          : undefined) ??
        (actions === undefined || (action === 'retry' && !actions.loadWorkflow) ? 'Not available here.' : undefined);
      if (refused || !actions) {
        return page(c, <WorkflowInstancePage {...found} canRetry={canRetry} notice={refused} />, 409);
      }
      const { workflow, instanceId } = found.summary;
      const definition = action === 'retry' ? await actions.loadWorkflow?.(workflow) : undefined;
      const { store, close } = await actions.openStore();
      let outcome: Awaited<ReturnType<typeof retryInstance>> | undefined;
      try {
        if (definition) outcome = await retryInstance(store, definition, instanceId);
        else await cancelInstance(store, workflow, instanceId);
      } catch (error) {
        const { unreadable } = found.summary;
        if (!unreadable) throw error;
        // A retry loads the instance: a record it cannot read fails the load (a cancel reads its records' types only).
        const message = error instanceof Error ? error.message : String(error);
        const notice = `The ${action} failed: ${message}. Its ${unreadableRecordName(unreadable)} cannot be read: ${unreadable.problem}.`;
        return page(c, <WorkflowInstancePage {...found} canRetry={canRetry} notice={notice} />, 409);
      } finally {
        await close();
      }
      if (outcome === 'parked') {
        // As `workflows retry` exits 1: the retry ran and the instance parked again, which is no success.
        const now = (await find(c)) ?? found;
        const notice = 'The retry parked the instance again: its latest error is below.';
        return page(c, <WorkflowInstancePage {...now} canRetry={canRetry} notice={notice} />, 409);
      }
      return c.redirect(`/workflows/${encodeURIComponent(workflow)}/${encodeURIComponent(instanceId)}`, 303);
    });
  }
}
