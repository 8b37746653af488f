/** @jsxImportSource hono/jsx */
import type { DeadLetter } from '@factline/core';
import { Json, Layout, query, Time, useSections } from '../layout.tsx';
import { csrfField, seenField } from '../security.ts';

/** What a confirmation page showed of a dead letter: a record that failed again, or moved on, differs. */
export const deadLetterSeen = (r: DeadLetter): string =>
  `${r.state} ${r.lastFailureAt.toISOString()} ${r.attempts} ${r.redrives.length}`;

const states: DeadLetter['state'][] = ['dead', 'redriven', 'discarded'];
const href = (record: DeadLetter, action = '') => `/dead-letters/${encodeURIComponent(record.id)}${action}`;

/** Dead letters of one state, newest last, with their group, type and error. */
export function DeadLettersPage(props: { records: DeadLetter[]; state: DeadLetter['state'] }) {
  return (
    <Layout title="Dead letters" section="dead-letters">
      <form method="get" action="/dead-letters">
        <select name="state" aria-label="state">
          {states.map((state) => (
            <option value={state} selected={state === props.state}>
              {state}
            </option>
          ))}
        </select>{' '}
        <button type="submit">Show</button>
      </form>
      <table>
        <thead>
          <tr>
            <th>dead-lettered</th>
            <th>group</th>
            <th>topic</th>
            <th>type</th>
            <th>error</th>
            <th class="num">attempts</th>
          </tr>
        </thead>
        <tbody>
          {props.records.map((r) => (
            <tr>
              <td>
                <a class="dead-letter-link" href={href(r)}>
                  <Time at={r.deadLetteredAt} />
                </a>
              </td>
              <td>{r.consumer}</td>
              <td class="mono">{r.topic}</td>
              <td>{r.message.type}</td>
              <td class="error-message">{r.error.message}</td>
              <td class="num">{r.attempts}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.records.length === 0 ? <p class="muted">No {props.state} letter.</p> : null}
    </Layout>
  );
}

/**
 * One dead letter: its error and stack, its message (its correlation linked
 * to the trace where the dashboard has one), its history, and the redrive
 * and discard buttons.
 */
export function DeadLetterPage(props: { record: DeadLetter; notice?: string }) {
  const r = props.record;
  const correlationId = r.message.metadata?.correlationId;
  const traced = useSections().includes('trace');
  return (
    <Layout title={`Dead letter ${r.id}`} section="dead-letters">
      {props.notice ? <p class="notice">{props.notice}</p> : null}
      <dl>
        <dt>state</dt>
        <dd class={`state-${r.state}`} id="dead-letter-state">
          {r.state}
        </dd>
        <dt>group</dt>
        <dd>{r.consumer}</dd>
        <dt>topic</dt>
        <dd class="mono">{r.topic}</dd>
        <dt>message</dt>
        <dd>
          {r.message.type} <span class="mono muted">{r.message.id}</span>
        </dd>
        <dt>correlation</dt>
        <dd>
          {correlationId && traced ? (
            <a class="mono trace-link" href={`/trace${query({ correlationId })}`}>
              {correlationId}
            </a>
          ) : correlationId ? (
            <span class="mono">{correlationId}</span>
          ) : (
            <span class="muted">none</span>
          )}
        </dd>
        <dt>error</dt>
        <dd class="error-message">
          {r.error.type}: {r.error.message}
        </dd>
        <dt>reason</dt>
        <dd>{r.reason}</dd>
        <dt>attempts</dt>
        <dd>{r.attempts}</dd>
        <dt>first failure</dt>
        <dd>
          <Time at={r.firstFailureAt} />
        </dd>
        <dt>dead-lettered</dt>
        <dd>
          <Time at={r.deadLetteredAt} />
        </dd>
        <dt>redrives</dt>
        <dd>{r.redrives.length === 0 ? 'none' : r.redrives.map((at) => <Time at={at} />)}</dd>
      </dl>
      {r.state === 'dead' ? (
        <p>
          <a class="action" href={href(r, '/redrive')}>
            Redrive…
          </a>{' '}
          ·{' '}
          <a class="action" href={href(r, '/discard')}>
            Discard…
          </a>
        </p>
      ) : null}
      <h2>Message data</h2>
      <Json value={r.message.data} label="message data" />
      <h2>Message metadata</h2>
      <Json value={r.message.metadata ?? {}} label="message metadata" />
      {r.error.stack ? (
        <>
          <h2>Stack</h2>
          <pre>{r.error.stack}</pre>
        </>
      ) : null}
    </Layout>
  );
}

/** The confirmation before a redrive or a discard: the one form that POSTs it, with the CSRF token. */
export function ConfirmPage(props: { record: DeadLetter; action: 'redrive' | 'discard'; csrfToken: string }) {
  const r = props.record;
  const what =
    props.action === 'redrive'
      ? `Deliver ${r.message.type} to group ${r.consumer} again?`
      : `Discard this dead letter (kept for the record, never delivered)?`;
  return (
    <Layout title={`${props.action === 'redrive' ? 'Redrive' : 'Discard'} dead letter`} section="dead-letters">
      <p>{what}</p>
      <p class="error-message">
        {r.error.type}: {r.error.message}
      </p>
      <form method="post" action={href(r, `/${props.action}`)} class="inline">
        <input type="hidden" name={csrfField} value={props.csrfToken} />
        <input type="hidden" name={seenField} value={deadLetterSeen(r)} />
        <button type="submit" class={props.action === 'redrive' ? 'primary' : 'danger'} id="confirm">
          {props.action === 'redrive' ? 'Redrive' : 'Discard'}
        </button>
      </form>{' '}
      <a href={href(r)}>Cancel</a>
    </Layout>
  );
}
