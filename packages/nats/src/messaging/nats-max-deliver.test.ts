import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { getSqliteDeadLetterStore, openSqliteDatabase } from '@factline/sqlite';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { getNatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const application = testApplication('maxdeliver');

after(async () => {
  if (!skip) await removeStreams([application]);
});

const never = new AbortController().signal;

describe('nats: max_deliver', { skip }, () => {
  it('a message given back unacknowledged by each process that got it reaches the dead-letter store at maxDeliver, never a handler', async () => {
    const db = openSqliteDatabase(':memory:');
    const deadLetters = getSqliteDeadLetterStore({ database: db });
    const open = () =>
      getNatsTransport({
        url: natsUrl,
        application,
        partitions: 1,
        maxDeliver: 2,
        claimTtlMs: 600,
        deadLetters,
        onError: (e, c) => console.log('ERR', c.stage, String(e), String((e as Error).cause)),
      });
    const message = createMessage({ type: 'Poison', key: 'p-1', data: { crashes: true } });
    // The first process gets it and closes without settling it (as a crash would, but handing it back at once).
    const first = await open();
    await first.declareSubscription('jobs', 'worker');
    await first.publish('jobs', [message]);
    const subscription = first.subscribe('jobs', 'worker');
    let got = await subscription.receive(1, 5000, never);
    assert.deepEqual(
      got.map((d) => d.message.id),
      [message.id],
    );
    await first.close();
    // The second delivery is the last the server would make: recorded, terminated, not handed out.
    const second = await open();
    const again = second.subscribe('jobs', 'worker');
    await waitUntil(async () => (await deadLetters.list()).length === 1, 'the dead letter', 10_000);
    const [record] = await deadLetters.list();
    assert.equal(record?.message.id, message.id);
    assert.equal(record?.consumer, 'worker');
    assert.equal(record?.error.type, 'DeliveryLimitExceeded');
    assert.equal(record?.attempts, 2);
    assert.match(record?.reason ?? '', /max_deliver reached \(deliveries given back unhandled at handovers count too/);
    got = await again.receive(1, 300, never);
    assert.deepEqual(got, [], 'a handler got the message past maxDeliver');
    await second.close();
    db.close();
  });

  it('a dead-letter store that fails at the last delivery is tried again until it takes the record: the message is never lost', async () => {
    const db = openSqliteDatabase(':memory:');
    const inner = getSqliteDeadLetterStore({ database: db });
    let failures = 2;
    const told: string[] = [];
    // A store busy for its first two writes (a locked file, a connection lost).
    const deadLetters = Object.create(inner, {
      add: {
        value: async (record: Parameters<typeof inner.add>[0]) => {
          if (failures > 0) {
            failures -= 1;
            throw new Error('SQLITE_BUSY: database is locked');
          }
          return inner.add(record);
        },
      },
    }) as typeof inner;
    const transport = await getNatsTransport({
      url: natsUrl,
      application: `${application}-busy`,
      partitions: 1,
      maxDeliver: 2,
      deadLetters,
      onError: (error, { stage }) => told.push(`${stage}: ${String(error)}`),
    });
    try {
      await transport.declareSubscription('jobs', 'worker');
      const message = createMessage({ type: 'Poison', key: 'p-2', data: {} });
      await transport.publish('jobs', [message]);
      const subscription = transport.subscribe('jobs', 'worker');
      const [first] = await subscription.receive(1, 5000, never);
      assert.equal(first?.message.id, message.id);
      // Given back for a retry: its next delivery is the last the server makes.
      await first?.release(200);
      await waitUntil(async () => (await inner.list()).length === 1, 'the dead letter, once the store took it', 15_000);
      assert.equal((await inner.list())[0]?.message.id, message.id);
      assert.equal(told.filter((t) => t.startsWith('dead-letters: Error: SQLITE_BUSY')).length, 2);
      assert.deepEqual(await subscription.receive(1, 300, never), [], 'never handed to a handler');
    } finally {
      await transport.close();
      await removeStreams([`${application}-busy`]);
      db.close();
    }
  });

  it('refuses maxDeliver under 2: the last delivery is dead-lettered, never handled, so 1 would lose every message given back', async () => {
    await assert.rejects(
      getNatsTransport({ url: natsUrl, application, maxDeliver: 1 }),
      /getNatsTransport\.maxDeliver: must be a whole number, at least 2/,
    );
  });
});
