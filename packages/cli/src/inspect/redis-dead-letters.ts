import type { DeadLetter, DeadLetterStore } from '@factline/core';
import { answerWithin, keptOnSuccess } from '@factline/core/adapter';
import {
  applicationName,
  assertRedisUrl,
  getRedisDeadLetterStore,
  getRedisTransport,
  type RedisCommandSender,
  type RedisTlsOptions,
  type RedisTransport,
  redisKeys,
  unusableRedisServer,
} from '@factline/redis';
import { createClient } from 'redis';
import { CliError } from '../cli-error.ts';
import { redactUrl } from './database-url.ts';
import type { DeadLetterOperator, DeadLetterReader } from './inspector.ts';
import { type GroupRedriver, redrivingThrough } from './redriver.ts';
import { tlsFromEnvironment, tlsHandshakeError } from './tls-environment.ts';

/** How long connecting (and each transport's opening) may take before the command fails. */
const CONNECT_TIMEOUT_MS = 5000;

/** The longest wait between reconnect attempts of a long-lived connection (the dashboard's). */
const RECONNECT_MAX_MS = 2000;

/**
 * How long a command waits for Redis's answer. A server that stopped
 * answering without closing the connection (its host gone, a network
 * dropping packets) would otherwise hold a command, and the dashboard's
 * page, until the operating system's TCP timeout, many minutes.
 */
const ANSWER_TIMEOUT_MS = 10_000;

/** What a command or an opening that got no answer within `ms` fails with. */
const noAnswer = (url: string, ms: number, what: string) =>
  new CliError(`Redis at ${redactUrl(url)} did not answer ${what} within ${ms} ms`);

/** What the CLI does with a connection. */
type Client = RedisCommandSender & { readonly isOpen: boolean; close(): Promise<unknown>; destroy(): void };

/** Closes `client`, gracefully for at most `ms`, then at once: never waits on a server that stopped answering. */
async function closeWithin(client: Client, ms: number): Promise<void> {
  if (!client.isOpen) {
    client.destroy();
    return;
  }
  await answerWithin(client.close(), ms, () => new Error('late')).catch(() => client.destroy());
}

/**
 * `client`'s commands, each failing with a `CliError` when Redis did not
 * answer within `ms`; the connection is then dropped (what else waits on it
 * fails at once; the dashboard's reader opens another).
 */
function answeredWithin(client: Client, url: string, ms: number): RedisCommandSender {
  return {
    sendCommand: (args) =>
      answerWithin(
        client.sendCommand(args),
        ms,
        () => noAnswer(url, ms, `${args[0]}`),
        () => client.destroy(),
      ),
  };
}

/** Why a connection failed, in the CLI's words: a failed TLS handshake names the variables that fix it. */
function unreachable(url: string, error: unknown): CliError {
  const text = error instanceof Error ? error.message.trim() : String(error);
  return tlsHandshakeError(url, 'redis', error) ?? new CliError(`cannot reach Redis at ${redactUrl(url)}: ${text}`);
}

/**
 * One connection. The first connect fails fast and says why (a CLI command
 * gives up); with `reconnect` (the dashboard, kept open for hours) a later
 * drop is retried with backoff, and a command asked while Redis is away fails
 * at once instead of waiting for it. Returns the client and the TLS settings
 * the environment named (read once, for the transports a redrive opens).
 */
async function connect(url: string, application: string, { reconnect = false, writes = false } = {}) {
  assertRedisUrl(url, '--db');
  const problem = applicationName(application);
  if (problem) throw new CliError(`--app ${problem}, got '${application}'`);
  const tls = tlsFromEnvironment(url, 'redis');
  let connected = false;
  const client = createClient({
    url,
    disableOfflineQueue: reconnect,
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      reconnectStrategy: (retries) => (reconnect && connected ? Math.min(50 * 2 ** retries, RECONNECT_MAX_MS) : false),
      ...(tls ? { tls: true as const, ...tls } : {}),
    },
  });
  // A dropped connection rejects the command waiting on it, which reports it; the event itself adds nothing.
  client.on('error', () => undefined);
  try {
    // node-redis's connectTimeout covers the TCP connection, not the commands of its handshake after it.
    await answerWithin(client.connect(), CONNECT_TIMEOUT_MS, () =>
      noAnswer(url, CONNECT_TIMEOUT_MS, 'while connecting'),
    );
    connected = true;
  } catch (error) {
    client.destroy();
    throw error instanceof CliError ? error : unreachable(url, error);
  }
  // A Cluster node or a Sentinel holds no dead letters of the application; a replica holds them but takes no
  // writes. A server that evicts keys is the application's to refuse (its transport does): an operator still
  // works on its dead letters there. INFO refused (an ACL user without it): the server is taken as it is.
  const info = await answerWithin(
    client.sendCommand(['INFO']).then(String, () => ''),
    CONNECT_TIMEOUT_MS,
    () => noAnswer(url, CONNECT_TIMEOUT_MS, 'INFO'),
  ).catch((error: unknown) => {
    client.destroy();
    throw error;
  });
  const unusable = unusableRedisServer(info, url, { writes, allowEviction: true });
  if (unusable) {
    await closeWithin(client, CONNECT_TIMEOUT_MS);
    throw new CliError(unusable.message);
  }
  return { client, tls };
}

/**
 * The dead letters of `application` on a Redis server (`getRedisDeadLetterStore`'s
 * hashes), for `dlq ls|show` and the dashboard (`reconnect`: kept open, it
 * reconnects after a drop, and opens a new connection after one that
 * stopped answering). Each command fails when Redis did not answer within
 * `answerTimeoutMs` (10 s).
 */
export async function openRedisDeadLetterReader(
  url: string,
  application: string,
  options: { reconnect?: boolean; answerTimeoutMs?: number } = {},
): Promise<DeadLetterReader & { close(): Promise<void> }> {
  const reconnect = options.reconnect ?? false;
  const answerMs = options.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
  const open = async () => {
    const { client } = await connect(url, application, { reconnect });
    return { client, store: getRedisDeadLetterStore({ client: answeredWithin(client, url, answerMs), application }) };
  };
  let current = await open();
  /** The connection to read on: the dashboard's replaces one dropped as silent (`destroy` left it not open). */
  let reopening: Promise<typeof current> | undefined;
  let closed = false;
  const store = async () => {
    if (!reconnect || current.client.isOpen || closed) return current.store;
    reopening ??= open().finally(() => {
      reopening = undefined;
    });
    current = await reopening;
    return current.store;
  };
  return {
    list: async (filter) => (await store()).list(filter),
    get: async (id) => (await store()).get(id),
    async close() {
      closed = true;
      await reopening?.catch(() => undefined);
      await closeWithin(current.client, answerMs);
    },
  };
}

/**
 * Redrives through the Redis transport of `application`, asking `client`
 * (an open connection to its server) what is declared: to the record's group
 * only (`redeliver`), on the partition the message's key maps to; the
 * partition count is the one recorded for the topic on the server (the
 * application's `partitions` option), and a group not declared for the topic
 * there is refused before anything is sent; its transports connect with
 * `tls`. `close` closes the transports it opened, not `client`.
 */
export function redisRedriver(
  client: RedisCommandSender,
  url: string,
  application: string,
  tls?: RedisTlsOptions,
  answerMs = ANSWER_TIMEOUT_MS,
): GroupRedriver {
  const keys = redisKeys(application);
  /** One transport per partition count (one in practice), opened at the first redrive. */
  const transports = new Map<number, Promise<RedisTransport>>();

  /** Per topic, its partition count. */
  const partitionCounts = keptOnSuccess<number>();
  /**
   * The topic's partition count: as the transport recorded it when the topic
   * was first declared (`<app>:partitions`), else (data written before the
   * count was recorded) its partition streams `<app>:stream:<topic>:0`, `:1`,
   * … while they exist (a declared group has all of them). Asked once per
   * topic and command: never a walk of the keyspace.
   */
  const partitionsOf = (topic: string): Promise<number> =>
    partitionCounts.get(topic, async () => {
      const recorded = await client.sendCommand(['HGET', keys.partitions, topic]);
      if (recorded != null) return Number(recorded);
      let count = 0;
      while (Number(await client.sendCommand(['EXISTS', keys.stream(topic, count)])) === 1) count += 1;
      return count;
    });

  const cannotRedrive = async (record: DeadLetter): Promise<string | undefined> => {
    const declared = Number(await client.sendCommand(['SISMEMBER', keys.groups(record.topic), record.consumer]));
    if (declared === 1 && (await partitionsOf(record.topic)) > 0) return undefined;
    return `cannot redrive ${record.id}: group '${record.consumer}' is not declared for topic '${record.topic}' in the Redis application '${application}'`;
  };

  const transportFor = (partitions: number): Promise<RedisTransport> => {
    let transport = transports.get(partitions);
    if (!transport) {
      transport = getRedisTransport({
        url,
        application,
        partitions,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        allowEviction: true,
        ...(tls ? { tls } : {}),
      });
      transports.set(partitions, transport);
    }
    return transport;
  };

  return {
    cannotRedrive,
    async redeliver(record) {
      const reason = await cannotRedrive(record);
      if (reason) throw new CliError(reason);
      const transport = await transportFor(await partitionsOf(record.topic));
      await answerWithin(transport.redeliver(record.topic, record.consumer, [record.message]), answerMs, () =>
        noAnswer(url, answerMs, `the redrive of ${record.id} (it may have been sent: the record stays dead)`),
      );
    },
    async close() {
      const opened = await Promise.allSettled(transports.values());
      for (const result of opened) if (result.status === 'fulfilled') await result.value.close();
    },
  };
}

/** `redisRedriver` on a connection of its own, closed with it: for dead letters kept in a database. */
export async function openRedisRedriver(url: string, application: string): Promise<GroupRedriver> {
  const { client, tls } = await connect(url, application, { writes: true });
  const redriver = redisRedriver(answeredWithin(client, url, ANSWER_TIMEOUT_MS), url, application, tls);
  return {
    cannotRedrive: redriver.cannotRedrive,
    redeliver: redriver.redeliver,
    async close() {
      await redriver.close();
      await closeWithin(client, ANSWER_TIMEOUT_MS);
    },
  };
}

/**
 * The dead letters of `application` on a Redis server, for `dlq redrive|discard`.
 * A redrive goes through the Redis transport (`redisRedriver`); the message
 * first, then the mark: a failure between leaves the record dead, to be
 * redriven again. Each command fails when Redis did not answer within
 * `answerTimeoutMs` (10 s).
 */
export async function openRedisDeadLetterOperator(
  url: string,
  application: string,
  options: { answerTimeoutMs?: number } = {},
): Promise<DeadLetterOperator> {
  const answerMs = options.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
  const { client, tls } = await connect(url, application, { writes: true });
  const bounded = answeredWithin(client, url, answerMs);
  const store: DeadLetterStore = getRedisDeadLetterStore({ client: bounded, application });
  return redrivingThrough(store, redisRedriver(bounded, url, application, tls, answerMs), () =>
    closeWithin(client, answerMs),
  );
}
