import type { DeadLetter, DeadLetterStore, Message } from '@factline/core';
import { redriveDeadLetter } from '@factline/core/adapter';
import { CliError } from '../cli-error.ts';
import { redactUrl } from './database-url.ts';
import type { DeadLetterOperator } from './inspector.ts';
import { tlsFromEnvironment, tlsHandshakeError } from './tls-environment.ts';

/** Sends dead letters back to their consumer group on an application's broker transport. */
export interface GroupRedriver {
  /** Why the record's group cannot take it there (not declared for its topic), or undefined. */
  cannotRedrive(record: DeadLetter): Promise<string | undefined>;
  /** Sends the record's message to its group only; resolves once the broker has it. */
  redeliver(record: DeadLetter): Promise<void>;
  close(): Promise<void>;
}

/** The broker transport an application's messages travel over (`--transport` with `--app`). */
export interface TransportTarget {
  kind: 'rabbitmq' | 'nats' | 'redis';
  url: string;
  application: string;
}

const KINDS: readonly [RegExp, TransportTarget['kind']][] = [
  [/^amqps?:\/\//i, 'rabbitmq'],
  [/^(nats|tls):\/\//i, 'nats'],
  [/^rediss?:\/\//i, 'redis'],
];

const NAMES: Record<TransportTarget['kind'], string> = { rabbitmq: 'RabbitMQ', nats: 'NATS', redis: 'Redis' };

/**
 * Reads `--transport` (or `FACTLINE_TRANSPORT`): `amqp://` / `amqps://`
 * (RabbitMQ), `nats://` / `tls://` (NATS JetStream), `redis://` /
 * `rediss://` (Redis Streams), with the application (`--app`, else
 * `FACTLINE_APP`): the transport's `application` option.
 *
 * @example
 * parseTransportUrl('amqp://guest:guest@127.0.0.1:5672', 'shop'); // { kind: 'rabbitmq', url: 'amqp://…', application: 'shop' }
 */
export function parseTransportUrl(url: string, application: string | undefined): TransportTarget {
  const kind = KINDS.find(([pattern]) => pattern.test(url))?.[1];
  if (!kind) {
    throw new CliError(
      `--transport ${redactUrl(url)}: not an amqp://, nats:// or redis:// URL (the application's broker transport)`,
    );
  }
  if (application === undefined || application.trim() === '') {
    throw new CliError(
      `a ${NAMES[kind]} --transport needs the application: give --app <name> (the transport's application option) or set FACTLINE_APP`,
    );
  }
  return { kind, url, application };
}

/** The failure of a missing optional package as the package to install. */
async function load<T>(name: string, what: string, importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new CliError(`redriving through ${what} needs ${name}: install it next to factline (npm install ${name})`);
  }
}

/** What the RabbitMQ and NATS redrivers of their packages have in common. */
interface PackageRedriver {
  partitions(topic: string, group: string): Promise<number>;
  redeliver(topic: string, group: string, messages: readonly Message[]): Promise<void>;
  close(): Promise<void>;
}

/** A package's redriver as a `GroupRedriver`: a group with no partitions there is refused, naming the application. */
function fromPackage(redriver: PackageRedriver, target: TransportTarget): GroupRedriver {
  const cannotRedrive = async (record: DeadLetter) =>
    (await redriver.partitions(record.topic, record.consumer)) > 0
      ? undefined
      : `cannot redrive ${record.id}: group '${record.consumer}' is not declared for topic '${record.topic}' in the ${NAMES[target.kind]} application '${target.application}' at ${redactUrl(target.url)}`;
  return {
    cannotRedrive,
    async redeliver(record) {
      const reason = await cannotRedrive(record);
      if (reason) throw new CliError(reason);
      await redriver.redeliver(record.topic, record.consumer, [record.message]);
    },
    close: () => redriver.close(),
  };
}

/** Opens a redriver on the broker `target` names; its package is loaded when first needed. */
export async function openRedriver(target: TransportTarget): Promise<GroupRedriver> {
  const { url, application } = target;
  if (target.kind === 'rabbitmq') {
    const { getRabbitRedriver } = await load('@factline/rabbitmq', 'RabbitMQ', () => import('@factline/rabbitmq'));
    const tls = tlsFromEnvironment(url, 'amqp');
    const redriver = await getRabbitRedriver({ url, application, ...(tls ? { tls } : {}) }).catch((error: unknown) => {
      throw tlsHandshakeError(url, 'amqp', error) ?? error;
    });
    return fromPackage(redriver, target);
  }
  if (target.kind === 'nats') {
    const { getNatsRedriver } = await load('@factline/nats', 'NATS', () => import('@factline/nats'));
    const tls = tlsFromEnvironment(url, 'nats');
    const redriver = await getNatsRedriver({ url, application, ...(tls ? { tls } : {}) }).catch((error: unknown) => {
      throw tlsHandshakeError(url, 'nats', error) ?? error;
    });
    return fromPackage(redriver, target);
  }
  const { openRedisRedriver } = await load('@factline/redis', 'Redis', () => import('./redis-dead-letters.ts'));
  return openRedisRedriver(url, application);
}

/**
 * The dead letters of `store` with their redrives sent through `redriver`:
 * the message sent, then the record marked redriven
 * (`redriveDeadLetter`: a record changed since it was read is not sent; a
 * send that fails leaves the record dead). `close` closes the
 * redriver, then `closeStore`.
 */
export function redrivingThrough(
  store: DeadLetterStore,
  redriver: GroupRedriver,
  closeStore: () => Promise<void> | void,
): DeadLetterOperator {
  return {
    get: (id) => store.get(id),
    list: (filter) => store.list(filter),
    cannotRedrive: (record) => redriver.cannotRedrive(record),
    async redrive(record, at) {
      // Refused before anything is sent or marked: a group not declared there changes nothing.
      const reason = await redriver.cannotRedrive(record);
      if (reason) throw new CliError(reason);
      return redriveDeadLetter(store, record, at, () => redriver.redeliver(record));
    },
    async discard(record) {
      return store.update({ ...record, state: 'discarded' });
    },
    async close() {
      try {
        await redriver.close();
      } finally {
        await closeStore();
      }
    },
  };
}
