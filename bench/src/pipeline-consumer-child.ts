// Child process of the pipeline's competing-consumers subjects (workloads/pipeline-processes.ts): one
// consumer of the bench group on the transport of the given PostgreSQL schema (a pool of its own, SQL
// inbox on it) or SQLite file (a connection of its own, SQL inbox on it), whose handler does the
// workload's one INSERT. Sends 'ready' once its group is registered, then batches of
// [item index, epoch ms handled]; on 'stop' stops and exits.
import { type Consumer, createConsumer, type Inbox, type Transport } from '@factline/core';
import { getPostgresInbox, getPostgresTransport } from '@factline/postgres';
import { getSqliteInbox, getSqliteTransport } from '@factline/sqlite';

const [adapter, where, schema, topic, lanesText, groupCommitText] = process.argv.slice(2) as string[];
if (adapter !== 'postgres' && adapter !== 'sqlite') throw new Error(`unknown adapter ${adapter}: postgres or sqlite`);
const lanes = Number(lanesText);
const groupCommit = groupCommitText === 'true';
const send = (message: unknown) => process.send?.(message);
let handled: [number, number][] = [];
const done = (i: number) => handled.push([i, performance.timeOrigin + performance.now()]);

interface Item {
  i: number;
  total: number;
}
let consumer: Consumer;
let transport: Transport;
/** True once the group's row exists (the relay's publish then reaches it). */
let registered: () => Promise<boolean>;
if (adapter === 'postgres') {
  const pgTransport = await getPostgresTransport({ connectionString: where, schema, poolSize: lanes + 2 });
  transport = pgTransport;
  const inbox = await getPostgresInbox({ pool: pgTransport.pool, schema, groupCommit });
  const text = `INSERT INTO "${schema}".bench_items (id, stream, total) VALUES ($1, $2, $3)`;
  consumer = createConsumer({
    name: 'bench',
    topic: topic as string,
    transport,
    inbox,
    concurrency: lanes,
    handler: async (message, client) => {
      const item = message.data as Item;
      await client.query({ name: `items-${schema}`, text, values: [message.id, message.key, item.total] });
      done(item.i);
    },
  });
  registered = () =>
    pgTransport.pool
      .query(`SELECT 1 FROM "${schema}".transport_groups WHERE topic = $1 AND group_name = 'bench'`, [topic])
      .then((result) => (result.rowCount ?? 0) > 0);
} else {
  // Other processes' publishes are seen by polling: look often, as a competing consumer would be tuned.
  const sqliteTransport = getSqliteTransport({ path: where as string, pollIntervalMs: 5 });
  transport = sqliteTransport;
  const database = sqliteTransport.database;
  const inbox: Inbox<typeof database> = getSqliteInbox({ database, groupCommit });
  const insert = database.prepare<[string, string, number]>(
    'INSERT INTO bench_items (id, stream, total) VALUES (?, ?, ?)',
  );
  consumer = createConsumer({
    name: 'bench',
    topic: topic as string,
    transport,
    inbox,
    concurrency: lanes,
    handler: (message) => {
      const item = message.data as Item;
      insert.run(message.id, message.key as string, item.total);
      done(item.i);
    },
  });
  registered = async () =>
    database.prepare("SELECT 1 FROM factline_transport_groups WHERE topic = ? AND group_name = 'bench'").get(topic) !==
    undefined;
}
await consumer.start();
// The relay must not publish before the group exists, or its messages would not reach it.
const deadline = Date.now() + 10_000;
for (;;) {
  // A transport without this table declares its groups some other way: consumer.start() is then enough.
  const found = await registered().catch(() => true);
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
