// Child process of the pipeline's competing-consumers subject (workloads/pipeline-processes.ts): one
// consumer of the bench group on the PostgreSQL transport of the given schema (its own pool, SQL inbox
// on that pool), whose handler does the workload's one INSERT. Sends 'ready' once its group is
// registered, then batches of [item index, epoch ms handled]; on 'stop' stops and exits.
import { createConsumer } from '@factline/core';
import { getPostgresInbox, getPostgresTransport } from '@factline/postgres';

const [url, schema, topic, lanesText, groupCommitText] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const lanes = Number(lanesText);
const send = (message: unknown) => process.send?.(message);

const transport = await getPostgresTransport({ connectionString: url, schema, poolSize: lanes + 2 });
const inbox = await getPostgresInbox({ pool: transport.pool, schema, groupCommit: groupCommitText === 'true' });
const insert = `INSERT INTO "${schema}".bench_items (id, stream, total) VALUES ($1, $2, $3)`;
let handled: [number, number][] = [];
const consumer = createConsumer({
  name: 'bench',
  topic,
  transport,
  inbox,
  concurrency: lanes,
  handler: async (message, client) => {
    const item = message.data as { i: number; total: number };
    await client.query({ name: `items-${schema}`, text: insert, values: [message.id, message.key, item.total] });
    handled.push([item.i, performance.timeOrigin + performance.now()]);
  },
});
await consumer.start();
// The relay must not publish before the group exists, or its messages would not reach it.
const deadline = Date.now() + 10_000;
for (;;) {
  const found = await transport.pool
    .query(`SELECT 1 FROM "${schema}".transport_groups WHERE topic = $1 AND group_name = 'bench'`, [topic])
    .then((result) => (result.rowCount ?? 0) > 0)
    // A transport without this table declares its groups some other way: consumer.start() is then enough.
    .catch(() => true);
  if (found || Date.now() > deadline) break;
  await new Promise((resolve) => setTimeout(resolve, 10));
}
const flush = setInterval(() => {
  if (handled.length === 0) return;
  send({ handled });
  handled = [];
}, 10);
send('ready');
process.on('message', async (message) => {
  if (message !== 'stop') return;
  clearInterval(flush);
  if (handled.length > 0) send({ handled });
  await consumer.stop();
  await transport.close();
  process.exit(0);
});
// The parent's end (it died, or closed the channel) ends this process too.
process.on('disconnect', () => process.exit(0));
