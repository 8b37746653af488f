import type { DeadLetter, DeadLetterStore } from '@factline/core';
import { deadLetterFromJson, deadLetterMatches, deadLetterToJson } from '@factline/core/adapter';
import type { RedisCommandSender } from '../connection.ts';
import { redisKeys } from '../keys.ts';
import { runScript } from '../scripts.ts';

const liveKey = (record: DeadLetter) => `${record.consumer}\u0000${record.message.id}`;

/**
 * The dead letters of an application in Redis: a hash of records by id
 * (`<app>:dead`, each the record's JSON with its error, attempts, timestamps
 * and origin) and a hash of the live ones by consumer and message id
 * (`<app>:dead:live`), so that one message has one live record per consumer.
 * Kept until discarded records are removed by hand: they are few, and the
 * history is what an operator reads. The transport's `defaultDeadLetterStore()`.
 *
 * @example
 * const deadLetters = getRedisDeadLetterStore({ client, application: 'shop' });
 * const waiting = await deadLetters.list({ consumer: 'billing' });
 */
export function getRedisDeadLetterStore(settings: {
  client: RedisCommandSender;
  application: string;
}): DeadLetterStore {
  const { client } = settings;
  const keys = redisKeys(settings.application);
  const both = [keys.deadLetters, keys.liveDeadLetters];
  return {
    async add(record) {
      await runScript(client, 'deadAdd', both, [record.id, deadLetterToJson(record), liveKey(record)]);
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
    async update(record) {
      await runScript(client, 'deadUpdate', both, [record.id, deadLetterToJson(record), liveKey(record), record.state]);
    },
  };
}
