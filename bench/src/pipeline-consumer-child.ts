// Child process of the pipeline's competing-consumers subjects (workloads/pipeline-processes.ts). It
// lives for the whole run, so that its code is as warm as the parent's from one trial to the next.
// Per trial, on {open}: one consumer of the bench group on the transport of the given PostgreSQL
// schema (a pool of its own, SQL inbox on it) or SQLite file (a connection of its own, SQL inbox on
// it), whose handler does the workload's one INSERT; it answers 'ready' once its group is registered,
// then sends batches of {handled: [item index, epoch ms handled]}. On 'close' it stops that consumer
// and answers 'closed'. It exits when the parent disconnects.
import { type Consumer, createConsumer, type Inbox, type Transport } from '@factline/core';
import { getPostgresInbox, getPostgresTransport } from '@factline/postgres';
import { getSqliteInbox, getSqliteTransport } from '@factline/sqlite';

export interface OpenRequest {
  adapter: 'postgres' | 'sqlite';
  /** The PostgreSQL connection string, or the SQLite file. */
  where: string;
  /** The PostgreSQL schema (unused on SQLite). */
  schema: string;
  topic: string;
  lanes: number;
  groupCommit: boolean;
}

interface Item {
  i: number;
  total: number;
}

const send = (message: unknown) => process.send?.(message);
let handled: [number, number][] = [];
const done = (i: number) => handled.push([i, performance.timeOrigin + performance.now()]);

/** Builds this trial's consumer; resolves with it, its transport and a check that its group is registered. */
async function open(request: OpenRequest): Promise<{
  consumer: Consumer;
  transport: Transport;
  registered: () => Promise<boolean>;
}> {
  const { adapter, where, schema, topic, lanes, groupCommit } = request;
  if (adapter === 'postgres') {
    const transport = await getPostgresTransport({ connectionString: where, schema, poolSize: lanes + 2 });
    const inbox = await getPostgresInbox({ pool: transport.pool, schema, groupCommit });
    const text = `INSERT INTO "${schema}".bench_items (id, stream, total) VALUES ($1, $2, $3)`;
    const consumer = createConsumer({
      name: 'bench',
      topic,
      transport,
      inbox,
      concurrency: lanes,
      handler: async (message, client) => {
        const item = message.data as Item;
        await client.query({ name: `items-${schema}`, text, values: [message.id, message.key, item.total] });
        done(item.i);
      },
    });
    const registered = () =>
      transport.pool
        .query(`SELECT 1 FROM "${schema}".transport_groups WHERE topic = $1 AND group_name = 'bench'`, [topic])
        .then((result) => (result.rowCount ?? 0) > 0);
    return { consumer, transport, registered };
  }
  if (adapter !== 'sqlite') throw new Error(`unknown adapter ${String(adapter)}: postgres or sqlite`);
  // Other processes' publishes are seen by polling: look often, as a competing consumer would be tuned.
  const transport = getSqliteTransport({ path: where, pollIntervalMs: 5 });
  const database = transport.database;
  const inbox: Inbox<typeof database> = getSqliteInbox({ database, groupCommit });
  const insert = database.prepare<[string, string, number]>(
    'INSERT INTO bench_items (id, stream, total) VALUES (?, ?, ?)',
  );
  const consumer = createConsumer({
    name: 'bench',
    topic,
    transport,
    inbox,
    concurrency: lanes,
    handler: (message) => {
      const item = message.data as Item;
      insert.run(message.id, message.key as string, item.total);
      done(item.i);
    },
  });
  const registered = async () =>
    database.prepare("SELECT 1 FROM factline_transport_groups WHERE topic = ? AND group_name = 'bench'").get(topic) !==
    undefined;
  return { consumer, transport, registered };
}

let current: { consumer: Consumer; transport: Transport } | undefined;
const flush = () => {
  if (handled.length === 0) return;
  send({ handled });
  handled = [];
};
setInterval(flush, 10);

process.on('message', async (message: { open: OpenRequest } | 'close') => {
  try {
    if (message === 'close') {
      const trial = current;
      current = undefined;
      await trial?.consumer.stop();
      await trial?.transport.close();
      flush();
      send('closed');
      return;
    }
    const trial = await open(message.open);
    current = trial;
    await trial.consumer.start();
    // The relay must not publish before the group exists, or its messages would not reach it.
    const deadline = Date.now() + 10_000;
    for (;;) {
      // A transport without this table declares its groups some other way: consumer.start() is then enough.
      const found = await trial.registered().catch(() => true);
      if (found || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    send('ready');
  } catch (error) {
    send({ error: (error as Error).message });
  }
});
// The parent's end (it died, or closed the channel) ends this process too.
process.on('disconnect', () => process.exit(0));
send('started');
