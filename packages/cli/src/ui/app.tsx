/** @jsxImportSource hono/jsx */
import { setTimeout as delay } from 'node:timers/promises';
import type { DeadLetter } from '@factline/core';
import { type Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { DeadLetterOperator, Inspector } from '../inspect/inspector.ts';
import { liveScript, stylesheet } from './assets.ts';
import { Layout } from './layout.tsx';
import { ConfirmPage, DeadLetterPage, DeadLettersPage } from './pages/dead-letters.tsx';
import { OutboxPage } from './pages/outbox.tsx';
import { ProjectionsPage } from './pages/projections.tsx';
import { EventPage, StreamPage, StreamsPage } from './pages/streams.tsx';
import { TracePage } from './pages/trace.tsx';
import { csrfCheck, hostCheck, securityHeaders, tokenCheck } from './security.ts';
import { addWorkflowRoutes, type WorkflowActions } from './workflow-routes.tsx';

export interface DashboardSettings {
  inspector: Inspector;
  /** A read-write connection for one redrive or discard; closed after it. */
  openDeadLetterOperator: () => Promise<DeadLetterOperator>;
  csrfToken: string;
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

const pageSize = 50;
const states = new Set<string>(['dead', 'redriven', 'discarded']);

/** `<!DOCTYPE html>` and the page. */
const page = (c: Context, element: unknown, status: 200 | 404 | 409 = 200) =>
  c.html(`<!DOCTYPE html>${String(element)}`, status);

const notFound = (c: Context, what: string) =>
  page(
    c,
    <Layout title="Not found" section="streams">
      <p>{what}</p>
    </Layout>,
    404,
  );

const positiveInteger = (text: string | undefined, fallback: number) => {
  const value = Number(text);
  return text !== undefined && /^\d+$/.test(text) && Number.isSafeInteger(value) && value >= 1 ? value : fallback;
};

/**
 * The dashboard's routes over an inspector: every page a GET, every change
 * a POST behind the host, token and CSRF checks.
 */
export function createDashboard(settings: DashboardSettings): Hono {
  const { inspector } = settings;
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
  app.get('/', (c) => c.redirect('/streams'));

  app.get('/streams', async (c) => {
    const prefix = c.req.query('prefix') ?? '';
    const after = c.req.query('after') || undefined;
    const streams = await inspector.listStreams({
      limit: pageSize,
      ...(after === undefined ? {} : { after }),
      ...(prefix === '' ? {} : { prefix }),
    });
    const next = streams.length === pageSize ? streams.at(-1)?.streamId : undefined;
    return page(
      c,
      <StreamsPage
        streams={streams}
        prefix={prefix}
        {...(after === undefined ? {} : { after })}
        {...(next === undefined ? {} : { next })}
      />,
    );
  });

  app.get('/stream', async (c) => {
    const streamId = c.req.query('id') ?? '';
    const from = positiveInteger(c.req.query('from'), 1);
    const events = await inspector.readStream(streamId, { from, limit: pageSize });
    if (!events) return notFound(c, `No stream ${streamId}.`);
    const last = events.at(-1);
    const next = events.length === pageSize && last ? last.streamVersion + 1 : undefined;
    return page(
      c,
      <StreamPage streamId={streamId} events={events} from={from} {...(next === undefined ? {} : { next })} />,
    );
  });

  app.get('/events/:position', async (c) => {
    const position = positiveInteger(c.req.param('position'), 0);
    const [event] = position > 0 ? await inspector.readAll(position - 1, 1) : [];
    if (!event || event.position !== position) return notFound(c, `No event at position ${c.req.param('position')}.`);
    return page(c, <EventPage event={event} />);
  });

  app.get('/projections', async (c) => page(c, <ProjectionsPage projections={await inspector.projections()} />));
  app.get('/projections/live', (c) =>
    streamSSE(
      c,
      async (stream) => {
        // Ends when the browser leaves or the server closes, whichever comes first, even mid-wait.
        const gone = new AbortController();
        stream.onAbort(() => gone.abort());
        const ended = AbortSignal.any([gone.signal, settings.signal]);
        while (!ended.aborted) {
          await stream.writeSSE({ event: 'projections', data: JSON.stringify(await inspector.projections()) });
          await delay(settings.liveIntervalMs, undefined, { signal: ended }).catch(() => undefined);
        }
      },
      // A failed read ends the stream (the browser reconnects); it is reported, not printed.
      async (error) => settings.onError(error),
    ),
  );

  app.get('/dead-letters', async (c) => {
    const asked = c.req.query('state') ?? 'dead';
    const state = (states.has(asked) ? asked : 'dead') as DeadLetter['state'];
    return page(c, <DeadLettersPage records={await inspector.deadLetters({ state })} state={state} />);
  });
  app.get('/dead-letters/:id', async (c) => {
    const record = await inspector.deadLetter(c.req.param('id'));
    if (!record) return notFound(c, `No dead letter ${c.req.param('id')}.`);
    return page(c, <DeadLetterPage record={record} />);
  });
  for (const action of ['redrive', 'discard'] as const) {
    app.get(`/dead-letters/:id/${action}`, async (c) => {
      const record = await inspector.deadLetter(c.req.param('id'));
      if (!record) return notFound(c, `No dead letter ${c.req.param('id')}.`);
      if (record.state !== 'dead')
        return page(c, <DeadLetterPage record={record} notice={`Already ${record.state}.`} />, 409);
      return page(c, <ConfirmPage record={record} action={action} csrfToken={settings.csrfToken} />);
    });
    app.post(`/dead-letters/:id/${action}`, async (c) => {
      const operator = await settings.openDeadLetterOperator();
      try {
        const record = await operator.get(c.req.param('id'));
        if (!record) return notFound(c, `No dead letter ${c.req.param('id')}.`);
        const refusal =
          record.state !== 'dead'
            ? `Already ${record.state}.`
            : action === 'redrive'
              ? await operator.cannotRedrive(record)
              : undefined;
        if (refusal !== undefined) return page(c, <DeadLetterPage record={record} notice={refusal} />, 409);
        if (action === 'redrive') await operator.redrive(record, new Date());
        else await operator.discard(record);
      } finally {
        await operator.close();
      }
      return c.redirect(`/dead-letters/${encodeURIComponent(c.req.param('id'))}`, 303);
    });
  }

  app.get('/trace', async (c) => {
    const correlationId = c.req.query('correlationId') ?? '';
    const tree = correlationId === '' ? undefined : await inspector.trace(correlationId);
    return page(c, <TracePage correlationId={correlationId} {...(tree === undefined ? {} : { tree })} />);
  });
  app.get('/trace.json', async (c) => {
    const correlationId = c.req.query('correlationId') ?? '';
    if (correlationId === '') return c.json({ error: 'give ?correlationId=' }, 400);
    return c.json(await inspector.trace(correlationId));
  });

  addWorkflowRoutes(app, settings, page, notFound);
  app.get('/outbox', async (c) => page(c, <OutboxPage status={await inspector.outboxStatus()} />));
  return app;
}
