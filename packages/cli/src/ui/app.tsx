import { Hono } from 'hono';
import type { Inspector } from '../inspect/inspector.ts';
import { liveScript, stylesheet } from './assets.ts';
import { addDeadLetterRoutes, type DeadLetterRouteSettings } from './dead-letter-routes.tsx';
import { addInspectorRoutes } from './inspector-routes.tsx';
import { allSections, type Sections, sectionPath } from './layout.tsx';
import { pageRenderers } from './render.tsx';
import { csrfCheck, hostCheck, securityHeaders, tokenCheck } from './security.ts';
import { addWorkflowRoutes, type WorkflowActions } from './workflow-routes.tsx';

export interface DashboardSettings extends DeadLetterRouteSettings {
  /**
   * The database's read-only view: the streams, projections, workflows,
   * outbox and trace pages. Without it (a Redis application's dead letters)
   * the dashboard is its dead-letter pages alone.
   */
  inspector?: Inspector;
  /** Retry and cancel of workflow instances; without it the workflow pages only read. */
  workflows?: WorkflowActions;
  /** Required on every request when set. */
  token: string | undefined;
  /** The `Host` headers accepted (undefined: any, for a wildcard bind). */
  allowedHosts: () => Set<string> | undefined;
  /** How often the projections page's live lag is read. */
  liveIntervalMs: number;
  /** Aborted when the server closes: live streams end. */
  signal: AbortSignal;
  onError: (error: unknown) => void;
}

/** The sections over dead letters alone. */
const deadLetterSections: Sections = ['dead-letters'];

/**
 * The dashboard's routes: every page a GET, every change a POST behind the
 * host, token and CSRF checks. The pages of the sections it lacks (no
 * inspector: all but the dead letters) answer 404.
 */
export function createDashboard(settings: DashboardSettings): Hono {
  const { inspector } = settings;
  const sections = inspector ? allSections : deadLetterSections;
  const { page, notFound } = pageRenderers(sections);
  const app = new Hono();
  app.use(securityHeaders, hostCheck(settings.allowedHosts), tokenCheck(settings.token), csrfCheck(settings.csrfToken));
  app.onError((error, c) => {
    settings.onError(error);
    return c.text(`error: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`, 500);
  });
  app.notFound((c) => notFound(c, 'No such page.'));

  app.get('/assets/style.css', (c) => c.body(stylesheet, 200, { 'Content-Type': 'text/css; charset=utf-8' }));
  app.get('/assets/live.js', (c) => c.body(liveScript, 200, { 'Content-Type': 'text/javascript; charset=utf-8' }));
  app.get('/favicon.ico', (c) => c.body(null, 204));
  app.get('/', (c) => c.redirect(sectionPath(sections[0])));

  addDeadLetterRoutes(app, settings, page, notFound);
  if (inspector) {
    addInspectorRoutes(app, { ...settings, inspector }, page, notFound);
    addWorkflowRoutes(app, { ...settings, inspector }, page, notFound);
  }
  return app;
}
