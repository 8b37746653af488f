import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidationError } from '@factline/core';
import { getRedisDeadLetterStore } from './redis-dead-letters.ts';

test('getRedisDeadLetterStore refuses an unknown option, a missing or bad application, a client that is none', () => {
  const sent: string[][] = [];
  const client = {
    sendCommand: async (args: string[]) => {
      sent.push(args);
      return [];
    },
  };
  for (const [path, given] of [
    ['getRedisDeadLetterStore.applicaton', { client, application: 'shop', applicaton: 'shop' }],
    ['getRedisDeadLetterStore.application', { client }],
    ['getRedisDeadLetterStore.application', { client, application: 'shop:eu' }],
    ['getRedisDeadLetterStore.client', { client: {}, application: 'shop' }],
  ] as const) {
    assert.throws(
      () => getRedisDeadLetterStore(given as never),
      (e: unknown) => isValidationError(e) && e.issues[0]?.path === path,
      `${path} in ${JSON.stringify(Object.keys(given))}`,
    );
  }
  assert.deepEqual(sent, [], 'nothing is sent to Redis');
});
