/** @jsxImportSource hono/jsx */
import type { DeadLetter } from '@factline/core';
import type { Hono } from 'hono';
import type { DeadLetterOperator, DeadLetterReader } from '../inspect/inspector.ts';
import { ConfirmPage, DeadLetterPage, DeadLettersPage, deadLetterSeen } from './pages/dead-letters.tsx';
import type { RenderNotFound, RenderPage } from './render.tsx';
import { seenField } from './security.ts';

const states = new Set<string>(['dead', 'redriven', 'discarded']);

/** What the dead-letter pages read and change with. */
export interface DeadLetterRouteSettings {
  /** Read while the server runs: a database's dead letters, or a Redis application's. */
  deadLetters: DeadLetterReader;
  /** A read-write connection for one redrive or discard; closed after it. */
  openDeadLetterOperator: () => Promise<DeadLetterOperator>;
  csrfToken: string;
}

/**
 * The dead-letter pages: the records of one state, one record, and redrive
 * and discard behind a confirmation page (GET) and a POST with the CSRF token.
 */
export function addDeadLetterRoutes(
  app: Hono,
  settings: DeadLetterRouteSettings,
  page: RenderPage,
  notFound: RenderNotFound,
): void {
  const { deadLetters } = settings;
  app.get('/dead-letters', async (c) => {
    const asked = c.req.query('state') ?? 'dead';
    const state = (states.has(asked) ? asked : 'dead') as DeadLetter['state'];
    return page(c, <DeadLettersPage records={await deadLetters.list({ state })} state={state} />);
  });
  app.get('/dead-letters/:id', async (c) => {
    const record = await deadLetters.get(c.req.param('id'));
    if (!record) return notFound(c, `No dead letter ${c.req.param('id')}.`);
    return page(c, <DeadLetterPage record={record} />);
  });
  for (const action of ['redrive', 'discard'] as const) {
    app.get(`/dead-letters/:id/${action}`, async (c) => {
      const record = await deadLetters.get(c.req.param('id'));
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
        const seen = (await c.req.parseBody())[seenField];
        const refusal =
          record.state !== 'dead'
            ? `Already ${record.state}.`
            : seen !== deadLetterSeen(record)
              ? 'The record changed after this page showed it (it failed again, or was redriven or discarded elsewhere): nothing was done. Here it is as it is now.'
              : action === 'redrive'
                ? await operator.cannotRedrive(record)
                : undefined;
        if (refusal !== undefined) return page(c, <DeadLetterPage record={record} notice={refusal} />, 409);
        const marked =
          action === 'redrive' ? await operator.redrive(record, new Date()) : await operator.discard(record);
        if (!marked) {
          // Changed between its reading and its change (failed again, or redriven or discarded elsewhere).
          const now = (await operator.get(record.id)) ?? record;
          const notice =
            action === 'redrive'
              ? 'The record changed meanwhile (failed again, or redriven or discarded elsewhere): left as it is, its message not sent.'
              : 'The record changed meanwhile (failed again, or redriven or discarded elsewhere): left as it is, not discarded.';
          return page(c, <DeadLetterPage record={now} notice={notice} />, 409);
        }
      } finally {
        await operator.close();
      }
      return c.redirect(`/dead-letters/${encodeURIComponent(c.req.param('id'))}`, 303);
    });
  }
}
