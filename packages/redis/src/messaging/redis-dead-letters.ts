import { type DeadLetter, type DeadLetterStore, TransportError } from '@factline/core';
import {
  checkOptions,
  deadLetterFromJson,
  deadLetterMatches,
  deadLetterRedrivesJson,
  deadLetterToJson,
  type OptionSpecOf,
  refreshedDeadLetter,
} from '@factline/core/adapter';
import type { RedisCommandSender } from '../connection.ts';
import { redisKeys } from '../keys.ts';
import { applicationName } from '../options.ts';
import { runScript } from '../scripts.ts';

interface RedisDeadLetterStoreSettings {
  /** A connected node-redis client (or anything with its `sendCommand`). */
  client: RedisCommandSender;
  /** The transport's `application`: the records live under `<application>:dead`. */
  application: string;
}

const spec: OptionSpecOf<RedisDeadLetterStoreSettings> = {
  client: (value) =>
    typeof (value as Partial<RedisCommandSender> | null)?.sendCommand === 'function'
      ? undefined
      : 'must be a Redis client (with sendCommand)',
  application: applicationName,
};

const liveKey = (record: DeadLetter) => `${record.consumer}\u0000${record.topic}\u0000${record.message.id}`;

/**
 * The dead letters of an application in Redis: a hash of records by id
 * (`<app>:dead`, each the record's JSON with its error, attempts, timestamps
 * and origin) and a hash of the live ones by consumer, topic and message
 * id (`<app>:dead:live`), so that one message has one live record per
 * consumer and topic (a new failure of the message refreshes it; an update
 * applies only to a record still dead with the failure it was read with).
 * Kept until discarded records are removed by hand: they are few, and the
 * history is what an operator reads. The transport's `defaultDeadLetterStore()`.
 *
 * @example
 * const deadLetters = getRedisDeadLetterStore({ client, application: 'shop' });
 * const waiting = await deadLetters.list({ consumer: 'billing' });
 */
export function getRedisDeadLetterStore(settings: RedisDeadLetterStoreSettings): DeadLetterStore {
  checkOptions(settings, spec, 'getRedisDeadLetterStore', { required: ['client', 'application'], optional: false });
  const { client } = settings;
  const keys = redisKeys(settings.application);
  const both = [keys.deadLetters, keys.liveDeadLetters];
  return {
    async add(record) {
      const json = deadLetterToJson(record);
      // While another record of the message is live, it takes this failure (kept as read, else looked at again).
      for (let round = 0; round < 5; round++) {
        const reply = await runScript(client, 'deadAdd', both, [record.id, json, liveKey(record)]);
        if (!Array.isArray(reply)) return;
        const [liveId, liveJson] = reply.map(String) as [string, string];
        const refreshed = deadLetterToJson(refreshedDeadLetter(deadLetterFromJson(liveJson), record));
        const done = await runScript(client, 'deadRefresh', both, [liveId, liveJson, refreshed, liveKey(record)]);
        if (Number(done) === 1) return;
      }
      throw new TransportError(
        `the dead letter of message ${record.message.id} for consumer '${record.consumer}' kept changing while it was added`,
      );
    },
    async list(filter = {}) {
      const all = (await client.sendCommand(['HVALS', keys.deadLetters])) as unknown[];
      return all
        .map((json) => deadLetterFromJson(String(json)))
        .filter((record) => deadLetterMatches(record, filter))
        .sort((a, b) => a.deadLetteredAt.getTime() - b.deadLetteredAt.getTime() || a.id.localeCompare(b.id));
    },
    async get(id) {
      const json = await client.sendCommand(['HGET', keys.deadLetters, id]);
      return json === null || json === undefined ? undefined : deadLetterFromJson(String(json));
    },
    async update(record, read) {
      const written = await runScript(client, 'deadUpdate', both, [
        record.id,
        deadLetterToJson(record),
        liveKey(record),
        record.state,
        (read ?? record).deadLetteredAt.toISOString(),
        read?.state ?? 'dead',
        read ? deadLetterRedrivesJson(read) : '',
      ]);
      return Number(written) === 1;
    },
  };
}
