/** @jsxImportSource hono/jsx */
import { setTimeout as delay } from 'node:timers/promises';
import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Inspector } from '../inspect/inspector.ts';
import { OutboxPage } from './pages/outbox.tsx';
import { ProjectionsPage } from './pages/projections.tsx';
import { EventPage, StreamPage, StreamsPage } from './pages/streams.tsx';
import { TracePage } from './pages/trace.tsx';
import type { RenderNotFound, RenderPage } from './render.tsx';

/** What the pages over a database read with. */
export interface InspectorRouteSettings {
  inspector: Inspector;
  /** How often the projections page's live lag is read. */
  liveIntervalMs: number;
  /** Aborted when the server closes: live streams end. */
  signal: AbortSignal;
  onError: (error: unknown) => void;
}

const pageSize = 50;

const positiveInteger = (text: string | undefined, fallback: number) => {
  const value = Number(text);
  return text !== undefined && /^\d+$/.test(text) && Number.isSafeInteger(value) && value >= 1 ? value : fallback;
};

/** The pages over a database's inspector: streams, a stream, an event, projections (live), trace, outbox. */
export function addInspectorRoutes(
  app: Hono,
  settings: InspectorRouteSettings,
  page: RenderPage,
  notFound: RenderNotFound,
): void {
  const { inspector } = settings;
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

  app.get('/outbox', async (c) => page(c, <OutboxPage status={await inspector.outboxStatus()} />));
}
