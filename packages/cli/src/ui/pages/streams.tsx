/** @jsxImportSource hono/jsx */
import { notJsonProblem, type StoredEvent, type StreamSummary } from '../../inspect/inspector.ts';
import { Json, Layout, query, Time } from '../layout.tsx';

/** The streams page: search by id prefix, one page at a time after the last id shown (keyset paging). */
export function StreamsPage(props: { streams: StreamSummary[]; prefix: string; after?: string; next?: string }) {
  return (
    <Layout title="Streams" section="streams">
      <form method="get" action="/streams">
        <input name="prefix" value={props.prefix} placeholder="stream id starts with" aria-label="stream id prefix" />{' '}
        <button type="submit">Search</button>
      </form>
      <table>
        <thead>
          <tr>
            <th>stream</th>
            <th>category</th>
            <th class="num">version</th>
            <th>last event</th>
          </tr>
        </thead>
        <tbody>
          {props.streams.map((s) => (
            <tr>
              <td>
                <a class="mono stream-link" href={`/stream${query({ id: s.streamId })}`}>
                  {s.streamId}
                </a>
              </td>
              <td>{s.category}</td>
              <td class="num">{s.version}</td>
              <td>
                <Time at={s.lastRecordedAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.streams.length === 0 ? <p class="muted">No stream matches.</p> : null}
      <div class="pager">
        {props.after !== undefined ? (
          <a href={`/streams${query({ prefix: props.prefix || undefined })}`}>« first page</a>
        ) : null}
        {props.next !== undefined ? (
          <a rel="next" href={`/streams${query({ prefix: props.prefix || undefined, after: props.next })}`}>
            next page »
          </a>
        ) : null}
      </div>
    </Layout>
  );
}

/** One stream's events in order, a page at a time from a version. */
export function StreamPage(props: { streamId: string; events: StoredEvent[]; from: number; next?: number }) {
  return (
    <Layout title={`Stream ${props.streamId}`} section="streams">
      <table>
        <thead>
          <tr>
            <th class="num">version</th>
            <th class="num">position</th>
            <th>type</th>
            <th>recorded</th>
            <th>correlation</th>
          </tr>
        </thead>
        <tbody>
          {props.events.map((e) => (
            <tr>
              <td class="num">{e.streamVersion}</td>
              <td class="num">
                <a class="event-link" href={`/events/${e.position}`}>
                  #{e.position}
                </a>
              </td>
              <td>
                {e.type} <span class="muted">v{e.schemaVersion}</span>
              </td>
              <td>
                <Time at={e.recordedAt} />
              </td>
              <td class="mono">{e.metadata.correlationId ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="pager">
        {props.from > 1 ? <a href={`/stream${query({ id: props.streamId })}`}>« first events</a> : null}
        {props.next !== undefined ? (
          <a rel="next" href={`/stream${query({ id: props.streamId, from: props.next })}`}>
            next events »
          </a>
        ) : null}
      </div>
    </Layout>
  );
}

/** One event: its place, its data as indented JSON, its metadata, and a link to its correlation's trace. */
export function EventPage(props: { event: StoredEvent }) {
  const e = props.event;
  const correlationId = e.metadata.correlationId;
  return (
    <Layout title={`Event #${e.position}`} section="streams">
      <dl>
        <dt>id</dt>
        <dd class="mono">{e.id}</dd>
        <dt>stream</dt>
        <dd>
          <a class="mono" href={`/stream${query({ id: e.streamId })}`}>
            {e.streamId}
          </a>{' '}
          @ {e.streamVersion}
        </dd>
        <dt>type</dt>
        <dd>
          {e.type} <span class="muted">schema v{e.schemaVersion}</span>
        </dd>
        <dt>recorded</dt>
        <dd>
          <Time at={e.recordedAt} />
        </dd>
        <dt>correlation</dt>
        <dd>
          {correlationId ? (
            <a class="mono trace-link" href={`/trace${query({ correlationId })}`}>
              {correlationId}
            </a>
          ) : (
            <span class="muted">none</span>
          )}
        </dd>
        <dt>causation</dt>
        <dd class="mono">{e.metadata.causationId ?? ''}</dd>
      </dl>
      <h2>Data</h2>
      {e.notJson ? <p class="error-message">unreadable: {notJsonProblem(e)}</p> : null}
      <Json value={e.data} label="data" />
      <h2>Metadata</h2>
      <Json value={e.metadata} label="metadata" />
    </Layout>
  );
}
