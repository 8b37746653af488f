/**
 * Redis Streams workloads (`npm run bench -- redis`), against the server at FACTLINE_REDIS_URL, with
 * ~200-byte messages (the raw subjects send the same JSON the Factline envelopes are):
 * - `redis-publish`: MESSAGES appended (raw: node-redis, one pipelined `XADD` per message, all in
 *   flight; factline: `transport.publish` in batches of 100, 8 in flight, to 4 partitions).
 * - `redis-consume`: MESSAGES already in the stream read and acked (raw: `XREADGROUP COUNT 64` and
 *   one `XACK` per batch; factline: a subscription's `receive(64)` loop, acking each delivery).
 * - `redis-e2e`: publish MESSAGES, consume and ack; rate = first publish → last ack (raw: the two
 *   loops above at once, a blocking `XREADGROUP` on a connection of its own; factline:
 *   `transport.publish` → `createConsumer` with the retry policy, the Redis inbox and 64 key lanes,
 *   `FACTLINE_BENCH_REDIS_LANES`: a lane spends most of its time waiting for Redis, so a user after
 *   this rate configures more lanes than the default 8; timed once the consumer holds its partitions).
 *   `by-hand`: the seed's idempotent consumer written with node-redis alone (redis-by-hand.ts: claim
 *   `SET NX GET PX`, mark `SET EX`, one `XACK` per batch; no fencing, no per-key order across processes,
 *   no retry policy): what the inbox's guarantees cost a user who writes them without Factline.
 *   `factline-memory-inbox`: the same consumer with `createConsumer`'s default in-memory inbox (no
 *   claim or mark in Redis): what the Redis inbox costs end to end.
 *   Each trial also reports the CPU per message of this process and of redis-server.
 *   `factline-half` then runs at half the factline rate: p50/p99 = publish resolved → handled (µs).
 * - `redis-inbox`: MESSAGES ids through an idempotency check, 64 at a time (seed: `GET processed:<id>`
 *   then `SET processed:<id> 1 EX 86400`; factline: the Redis inbox's `applyOnce`, claim then mark,
 *   the claims and the marks of the 64 runs each in one script call).
 */
import { getInMemoryInbox } from '@factline/core';
import { messageToJson, redactUrl } from '@factline/core/adapter';
import { getRedisInbox, getRedisTransport, type RedisInbox, type RedisTransport, scanKeys } from '@factline/redis';
import { createClient } from 'redis';
import type { Trial, Workload } from '../harness.ts';
import { byHandRun, readGroupBatch } from './redis-by-hand.ts';
import {
  benchMessages,
  type CpuServer,
  subjectsUnless,
  transportTrial,
  uniqueName,
  withCpu,
} from './transport-trials.ts';

const MESSAGES = Number(process.env.FACTLINE_BENCH_REDIS_MESSAGES ?? 10_000);
/** Key lanes of the end-to-end consumer (its `concurrency`). */
const LANES = Number(process.env.FACTLINE_BENCH_REDIS_LANES ?? 64);
const url = process.env.FACTLINE_REDIS_URL ?? 'redis://127.0.0.1:6379';

const connect = async () => {
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
};

type Client = Awaited<ReturnType<typeof connect>>;

async function unavailable(): Promise<string | undefined> {
  try {
    const client = createClient({ url, socket: { connectTimeout: 3000, reconnectStrategy: false } });
    client.on('error', () => undefined);
    await client.connect();
    await client.close();
    return undefined;
  } catch (error) {
    return `Redis at ${redactUrl(url)} does not answer: ${(error as Error).message}`;
  }
}

async function removeKeys(client: Client, prefix: string): Promise<void> {
  for await (const found of scanKeys(client, `${prefix}*`)) await client.sendCommand(['UNLINK', ...found]);
}

/** redis-server's CPU time (user + sys); the server is shared, so other clients' work counts too. */
const redisCpu = (client: Client): CpuServer => ({
  name: 'redis',
  cpu: async () => {
    const info = String(await client.sendCommand(['INFO', 'cpu']));
    const seconds = (name: string) => Number(info.match(new RegExp(`${name}:([0-9.]+)`))?.[1] ?? 0);
    return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6;
  },
});

/** Raw node-redis on one stream of its own, removed afterwards. */
function rawTrial(kind: 'publish' | 'consume' | 'e2e'): Trial {
  let client: Client;
  let reader: Client;
  const stream = uniqueName('raw');
  const bodies = benchMessages(MESSAGES).map((m) => messageToJson(m));
  const publishAll = async () => {
    await Promise.all(bodies.map((body) => client.sendCommand(['XADD', stream, '*', 'm', body])));
  };
  const consumeAll = async () => {
    let acked = 0;
    while (acked < MESSAGES) {
      const entries = await readGroupBatch(reader, stream);
      if (entries.length === 0) continue;
      await client.sendCommand(['XACK', stream, 'g', ...entries.map(([id]) => id)]);
      acked += entries.length;
    }
  };
  return {
    setup: async () => {
      client = await connect();
      reader = await connect();
      await client.sendCommand(['XGROUP', 'CREATE', stream, 'g', '$', 'MKSTREAM']);
      if (kind === 'consume') await publishAll();
    },
    run: async () => {
      if (kind === 'publish') await publishAll();
      else if (kind === 'consume') await consumeAll();
      else
        await withCpu('redis-e2e', 'raw', MESSAGES, () => Promise.all([publishAll(), consumeAll()]), redisCpu(client));
      return MESSAGES;
    },
    teardown: async () => {
      await client.sendCommand(['DEL', stream]);
      await client.close();
      await reader.close();
    },
  };
}

/**
 * A Factline trial on an application of its own; its keys are removed afterwards. `memory`: the
 * end-to-end consumer keeps the default in-memory inbox instead of the Redis inbox.
 */
function factlineTrial(kind: 'publish' | 'consume' | 'e2e', paced = false, inbox: 'redis' | 'memory' = 'redis'): Trial {
  const application = uniqueName('factline');
  const subject = inbox === 'redis' ? 'factline' : 'factline-memory-inbox';
  return transportTrial<RedisTransport, undefined>({
    workload: 'redis-e2e',
    kind,
    paced,
    setsPace: inbox === 'redis',
    messages: MESSAGES,
    open: (partitions) => getRedisTransport({ url, application, partitions, prefetch: 512 }),
    endToEnd: async () => {
      const stats = await connect();
      const redisInbox = inbox === 'redis' ? await getRedisInbox({ url, application }) : undefined;
      return {
        inbox: redisInbox ?? getInMemoryInbox(),
        lanes: LANES,
        measure: (work) => withCpu('redis-e2e', subject, MESSAGES, work, redisCpu(stats)),
        close: async () => {
          await redisInbox?.close();
          await stats.close();
        },
      };
    },
    held: (transport, topic, group) => transport.heldPartitions(topic, group),
    removeLeftovers: async () => {
      const client = await connect();
      await removeKeys(client, `${application}:`);
      await client.close();
    },
  });
}

/** The idempotency check per message, 64 messages at a time: the seed's GET + SET EX, or the Redis inbox. */
function inboxTrial(kind: 'seed' | 'factline'): Trial {
  let client: Client;
  let inbox: RedisInbox;
  const application = uniqueName('inbox');
  const ids = benchMessages(MESSAGES).map((m) => m.id);
  const seed = async (id: string) => {
    const key = `${application}:processed:${id}`;
    if (await client.get(key)) return;
    await client.set(key, '1', { EX: 86_400 });
  };
  return {
    setup: async () => {
      client = await connect();
      inbox = await getRedisInbox({ url, application });
    },
    run: async () => {
      for (let i = 0; i < ids.length; i += 64) {
        const slice = ids.slice(i, i + 64);
        if (kind === 'seed') await Promise.all(slice.map(seed));
        else await Promise.all(slice.map((id) => inbox.applyOnce?.('bench', id, new Date(), () => undefined)));
      }
      return MESSAGES;
    },
    teardown: async () => {
      await removeKeys(client, `${application}:`);
      await client.close();
      await inbox.close();
    },
  };
}

/** The seed's idempotent consumer by hand on one stream of its own (redis-by-hand.ts); its keys removed afterwards. */
function byHandTrial(): Trial {
  let client: Client;
  let reader: Client;
  const stream = uniqueName('hand');
  let handled = 0;
  const run = () =>
    byHandRun({
      client,
      reader,
      stream,
      prefix: `${stream}:`,
      messages: benchMessages(MESSAGES),
      handle: () => {
        handled += 1;
      },
    });
  let prepared: ReturnType<typeof byHandRun>;
  return {
    setup: async () => {
      client = await connect();
      reader = await connect();
      await client.sendCommand(['XGROUP', 'CREATE', stream, 'g', '$', 'MKSTREAM']);
      prepared = run();
    },
    run: async () => {
      await withCpu(
        'redis-e2e',
        'by-hand',
        MESSAGES,
        () => Promise.all([prepared.publish(), prepared.consume()]),
        redisCpu(client),
      );
      if (handled !== MESSAGES) throw new Error(`by hand: ${handled} of ${MESSAGES} messages handled`);
      return MESSAGES;
    },
    teardown: async () => {
      await client.sendCommand(['DEL', stream]);
      await removeKeys(client, `${stream}:`);
      await client.close();
      await reader.close();
    },
  };
}

const subject = subjectsUnless(unavailable);

export const redisWorkloads: Workload[] = [
  {
    name: 'redis-publish',
    warmup: true,
    description: `${MESSAGES} ~200-byte messages appended; raw = node-redis pipelined XADD, all in flight; factline = transport.publish in batches of 100 (8 in flight) to 4 partition streams; after a warm-up trial`,
    unit: 'msg/s',
    subjects: [subject('raw', () => rawTrial('publish')), subject('factline', () => factlineTrial('publish'))],
  },
  {
    name: 'redis-consume',
    warmup: true,
    description: `${MESSAGES} messages in the stream read and acked; raw = XREADGROUP COUNT 64 + one XACK per batch; factline = subscription.receive(64) loop, one ack per delivery; after a warm-up trial`,
    unit: 'msg/s',
    subjects: [subject('raw', () => rawTrial('consume')), subject('factline', () => factlineTrial('consume'))],
  },
  {
    name: 'redis-e2e',
    warmup: true,
    description: `${MESSAGES} messages published and handled; rate = first publish → last ack; raw = pipelined XADD + blocking XREADGROUP/XACK; factline = transport.publish → createConsumer (retry policy, Redis inbox, ${LANES} key lanes: more lanes than the default 8, since a lane mostly waits on Redis), timed once the consumer holds the 4 partitions, after a warm-up trial; by-hand = the seed's idempotent consumer with node-redis alone (claim SET NX GET PX, handler, mark SET EX, one XACK per batch of 64; one stream, no fencing, no retry policy); factline-memory-inbox = the factline consumer with the default in-memory inbox (duplicates dropped within the process only, nothing written to Redis per message but the ack); node-cpu / redis-cpu = CPU µs per message of this process and of redis-server (shared: other clients count too), per trial; factline-half = the same at half the factline rate, p50/p99 = publish resolved → handled (µs)`,
    unit: 'msg/s',
    subjects: [
      subject('raw', () => rawTrial('e2e')),
      subject('by-hand', () => byHandTrial()),
      subject('factline', () => factlineTrial('e2e')),
      subject('factline-memory-inbox', () => factlineTrial('e2e', false, 'memory')),
      subject('factline-half', () => factlineTrial('e2e', true), 1),
    ],
  },
  {
    name: 'redis-inbox',
    description: `${MESSAGES} message ids through the idempotency check, 64 at a time; seed = GET processed:<id> then SET … EX 86400; factline = getRedisInbox().applyOnce (claim script, handler, mark script; the runs of one turn share each script call)`,
    unit: 'msg/s',
    subjects: [subject('seed', () => inboxTrial('seed')), subject('factline', () => inboxTrial('factline'))],
  },
];
