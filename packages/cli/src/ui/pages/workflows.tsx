/** @jsxImportSource hono/jsx */
import type { StoredEvent } from '../../inspect/inspector.ts';
import {
  describeUnreadable,
  elapsed,
  type InstanceState,
  instanceStates,
  isOverdue,
  recordProblem,
  type WorkflowInstanceSummary,
} from '../../workflows/instance-summary.ts';
import { Json, Layout, query, Time } from '../layout.tsx';
import { csrfField, seenField } from '../security.ts';

export type WorkflowAction = 'retry' | 'cancel';

const href = (s: { workflow: string; instanceId: string }, action = '') =>
  `/workflows/${encodeURIComponent(s.workflow)}/${encodeURIComponent(s.instanceId)}${action}`;

/** What the error column says of an instance: the park's error, and a record that cannot be read. */
const problemsOf = (s: WorkflowInstanceSummary) =>
  [
    s.parked ? `${s.parked.error.name}: ${s.parked.error.message}` : undefined,
    s.unreadable ? `unreadable: ${describeUnreadable(s.unreadable)}` : undefined,
  ]
    .filter((text) => text !== undefined)
    .join(' · ');

/** Instances of one state (parked by default), with their last input and pending timers. */
export function WorkflowsPage(props: {
  instances: WorkflowInstanceSummary[];
  state: InstanceState;
  after?: string;
  next?: string;
}) {
  return (
    <Layout title="Workflows" section="workflows">
      <form method="get" action="/workflows">
        <select name="state" aria-label="state">
          {instanceStates.map((state) => (
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
            <th>workflow</th>
            <th>instance</th>
            <th class="num">version</th>
            <th>last input</th>
            <th class="num">timers</th>
            <th>error</th>
          </tr>
        </thead>
        <tbody>
          {props.instances.map((s) => (
            <tr data-instance={s.streamId}>
              <td>{s.workflow}</td>
              <td>
                <a class="instance-link mono" href={href(s)}>
                  {s.instanceId}
                </a>
              </td>
              <td class="num">{s.version}</td>
              <td>
                {s.lastInput ? (
                  <>
                    {s.lastInput.type} <Time at={s.lastInput.at} />
                  </>
                ) : null}
              </td>
              <td class="num">
                {s.timers.length}
                {s.overdueTimers > 0 ? <span class="error-message"> ({s.overdueTimers} overdue)</span> : null}
              </td>
              <td class="error-message">{problemsOf(s)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.instances.length === 0 ? <p class="muted">No {props.state} instance.</p> : null}
      <div class="pager">
        {props.after !== undefined ? <a href={`/workflows${query({ state: props.state })}`}>« first page</a> : null}
        {props.next !== undefined ? (
          <a rel="next" href={`/workflows${query({ state: props.state, after: props.next })}`}>
            next page »
          </a>
        ) : null}
      </div>
    </Layout>
  );
}

/** One instance: its state, the park's error and failed input, pending timers, its records, and the actions. */
export function WorkflowInstancePage(props: {
  summary: WorkflowInstanceSummary;
  events: StoredEvent[];
  canRetry: boolean;
  notice?: string;
}) {
  const s = props.summary;
  const open = s.state === 'running' || s.state === 'parked';
  const now = Date.now();
  return (
    <Layout title={`Workflow ${s.streamId}`} section="workflows">
      {props.notice ? <p class="notice">{props.notice}</p> : null}
      <dl>
        <dt>state</dt>
        <dd class={`state-${s.state}`} id="instance-state">
          {s.state}
        </dd>
        <dt>version</dt>
        <dd>{s.version}</dd>
        <dt>timers</dt>
        <dd id="instance-timers">
          {s.timers.length === 0
            ? 'none'
            : s.timers.map((t) => (
                <div>
                  {t.token} due <Time at={t.dueAt} /> {t.messageType}
                  {isOverdue(t, now) ? (
                    <span class="error-message">
                      {' '}
                      overdue by {elapsed(now - t.dueAt.getTime())}: no timer runner fired it
                    </span>
                  ) : null}
                </div>
              ))}
        </dd>
        {s.parked ? (
          <>
            <dt>parked on</dt>
            <dd>
              {s.parked.input.type} <span class="mono muted">{s.parked.input.id}</span> <Time at={s.parked.at} />
            </dd>
            <dt>error</dt>
            <dd class="error-message">
              {s.parked.error.name}: {s.parked.error.message}
            </dd>
            <dt>kept</dt>
            <dd>{s.parked.pending} input(s) received since, for the retry</dd>
          </>
        ) : null}
        {s.unreadable ? (
          <>
            <dt>unreadable</dt>
            <dd class="error-message" id="instance-unreadable">
              {describeUnreadable(s.unreadable)}
            </dd>
          </>
        ) : null}
      </dl>
      <p>
        {s.state === 'parked' && props.canRetry && !s.unreadable ? (
          <>
            <a class="action" href={href(s, '/retry')}>
              Retry…
            </a>{' '}
            ·{' '}
          </>
        ) : null}
        {open ? (
          <a class="action" href={href(s, '/cancel')}>
            Cancel instance…
          </a>
        ) : null}
      </p>
      {s.state === 'parked' && !props.canRetry && !s.unreadable ? (
        <p class="muted">A retry runs the workflow's decide: start the dashboard with --workflows &lt;module&gt;.</p>
      ) : null}
      {s.unreadable ? (
        <p class="muted">
          A record of this instance cannot be read: it cannot be retried until the record is repaired.
        </p>
      ) : null}
      {s.parked ? (
        <>
          <h2>Failed input</h2>
          <Json value={s.parked.input.data} label="failed input" />
        </>
      ) : null}
      <h2>Records</h2>
      <table>
        <tbody>
          {props.events.map((e) => (
            <tr>
              <td class="num">{e.streamVersion}</td>
              <td>
                <Time at={e.recordedAt} />
              </td>
              <td>{e.type.replace('$workflow.', '')}</td>
              <td class="mono">{JSON.stringify(e.data)}</td>
              <td class="error-message">{recordProblem(e) ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>
  );
}

/** The confirmation before a retry or a cancel: the one form that POSTs it, with the CSRF token. */
export function ConfirmWorkflowPage(props: {
  summary: WorkflowInstanceSummary;
  action: WorkflowAction;
  csrfToken: string;
}) {
  const s = props.summary;
  const what =
    props.action === 'retry'
      ? `Decide ${s.parked?.input.type} and the ${s.parked?.pending ?? 0} input(s) kept since again?`
      : `End ${s.streamId}? Its timers are dropped and later inputs ignored.`;
  return (
    <Layout title={`${props.action === 'retry' ? 'Retry' : 'Cancel'} ${s.streamId}`} section="workflows">
      <p>{what}</p>
      <form method="post" action={href(s, `/${props.action}`)} class="inline">
        <input type="hidden" name={csrfField} value={props.csrfToken} />
        <input type="hidden" name={seenField} value={String(s.version)} />
        <button type="submit" class={props.action === 'retry' ? 'primary' : 'danger'} id="confirm">
          {props.action === 'retry' ? 'Retry' : 'Cancel instance'}
        </button>
      </form>{' '}
      <a href={href(s)}>Back</a>
    </Layout>
  );
}
