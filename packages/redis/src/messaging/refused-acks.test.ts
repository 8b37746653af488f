import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { ErrorReply } from 'redis';
import { commandError } from '../connection.ts';
import type { Entry } from './receive.ts';
import { createRefusedAcks } from './refused-acks.ts';

const entry = (key: string) =>
  ({ id: '1-0', partition: 0, message: createMessage({ type: 'T', key, data: {} }) }) as Entry;

/** Refused acks whose sends fail with `replies` in turn (then succeed); what it was told. */
function acksRefusedWith(...replies: string[]) {
  const told: unknown[] = [];
  const freed: Entry[] = [];
  let sends = 0;
  const acks = createRefusedAcks({
    send: async () => {
      const reply = replies[sends++];
      if (reply !== undefined) throw commandError(new ErrorReply(reply), 'acking');
    },
    current: () => true,
    reconnectMinMs: 1,
    reconnectMaxMs: 2,
    report: (error) => told.push(error),
    freed: (entry) => freed.push(entry),
  });
  return { acks, told, freed, sends: () => sends };
}

describe('redis: which refused acks are sent again', () => {
  it('a reply of a state that passes (BUSY, NOREPLICAS) is sent again, the key held meanwhile', async () => {
    const { acks, told, freed, sends } = acksRefusedWith(
      'BUSY Redis is busy running a script',
      'NOREPLICAS Not enough good replicas',
    );
    const first = entry('k');
    const acked = acks.ack(first);
    await acked;
    assert.equal(sends(), 3);
    assert.equal(told.length, 1, 'the first refusal told');
    assert.equal(acks.holdsKey(entry('k')), false, 'the key free once acked');
    assert.deepEqual(freed, [first], 'told the key is free');
    const { acks: taken, freed: none } = acksRefusedWith();
    await taken.ack(entry('k'));
    assert.deepEqual(none, [], 'an ack taken at once held nothing: nothing to tell');
  });

  it('a refusal of the command itself (NOPERM, a script error) rejects at once: the key is not held for good', async () => {
    for (const reply of [
      'NOPERM this user has no permissions to run the evalsha command',
      'ERR Error running script',
    ]) {
      const { acks, told, freed, sends } = acksRefusedWith(reply, reply, reply);
      await assert.rejects(acks.ack(entry('k')), (error: unknown) =>
        String(error).includes(reply.split(' ')[0] as string),
      );
      assert.equal(sends(), 1, `${reply}: not sent again`);
      assert.equal(told.length, 0);
      assert.equal(acks.holdsKey(entry('k')), false);
      assert.deepEqual(freed, [], 'it held nothing');
    }
  });
});
