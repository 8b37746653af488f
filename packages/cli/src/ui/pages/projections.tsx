/** @jsxImportSource hono/jsx */
import type { ProjectionState } from '../../inspect/inspector.ts';
import { Layout, Time } from '../layout.tsx';

/** The projections with their checkpoint, the log's head and the lag, which the page's script keeps live. */
export function ProjectionsPage(props: { projections: ProjectionState[] }) {
  return (
    <Layout title="Projections" section="projections" scripts={['/assets/live.js']}>
      <table>
        <thead>
          <tr>
            <th>projection</th>
            <th class="num">position</th>
            <th class="num">head</th>
            <th class="num">lag</th>
            <th class="num">live version</th>
            <th class="num">parked</th>
            <th>paused</th>
            <th>checkpoint updated</th>
          </tr>
        </thead>
        <tbody>
          {props.projections.map((p) => (
            <tr data-projection={p.name}>
              <td class="mono">{p.name}</td>
              <td class="num" data-field="position">
                {p.position}
              </td>
              <td class="num" data-field="head">
                {p.head}
              </td>
              <td class="num" data-field="lag">
                {p.lag}
              </td>
              <td class="num">{p.liveVersion}</td>
              <td class="num" data-field="parked">
                {p.parked}
              </td>
              <td data-field="paused">{String(p.paused)}</td>
              <td>
                <Time at={p.updatedAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.projections.length === 0 ? <p class="muted">No projection has run on this database.</p> : null}
      <p class="muted">
        Live: lag updated <span id="live-at">—</span>
      </p>
    </Layout>
  );
}
