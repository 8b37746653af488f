/** @jsxImportSource hono/jsx */
import type { OutboxStatus } from '../../inspect/inspector.ts';
import { Layout, Time } from '../layout.tsx';

/** What waits in the outbox for its relay, by topic. */
export function OutboxPage(props: { status: OutboxStatus }) {
  const s = props.status;
  if (!s.present) {
    return (
      <Layout title="Outbox" section="outbox">
        <p class="muted">This database holds no outbox.</p>
      </Layout>
    );
  }
  return (
    <Layout title="Outbox" section="outbox">
      <p>
        <strong id="outbox-waiting">{s.waiting}</strong> message{s.waiting === 1 ? '' : 's'} waiting; oldest{' '}
        <Time at={s.oldestEnqueuedAt} />
      </p>
      <table>
        <thead>
          <tr>
            <th>topic</th>
            <th class="num">waiting</th>
            <th>oldest enqueued</th>
          </tr>
        </thead>
        <tbody>
          {s.topics.map((t) => (
            <tr>
              <td class="mono">{t.topic}</td>
              <td class="num">{t.waiting}</td>
              <td>
                <Time at={t.oldestEnqueuedAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>
  );
}
