import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settlesWithin } from '@factline/core/testing';
import { closeClient, openClient, type RedisClient } from './connection.ts';
import { startForwarder } from './fixtures/forwarder.ts';
import { redisUnavailable, redisUrl } from './fixtures/server.ts';

const skip = await redisUnavailable();

/** The node-redis class a client was made from (node-redis hands out an object whose prototype is the client). */
const classOf = (client: RedisClient) => (Object.getPrototypeOf(Object.getPrototypeOf(client)) as object).constructor;

const settings = (name: string) => ({
  name,
  connectTimeoutMs: 3000,
  reconnectMinMs: 100,
  reconnectMaxMs: 1000,
  onError: () => undefined,
});

describe('openClient', { skip }, () => {
  it('makes every connection from one client class, each under its own name', async () => {
    // node-redis builds a class per distinct options (tens of ms each): connections with names of their own must not.
    const clients: RedisClient[] = [];
    try {
      for (const name of ['factline-test-a', 'factline-test-b', 'factline-test-a-read']) {
        clients.push(await openClient(redisUrl, settings(name)));
      }
      const [first, ...rest] = clients.map(classOf);
      for (const other of rest) assert.equal(other, first, 'one class for all');
      const names = await Promise.all(clients.map((client) => client.sendCommand(['CLIENT', 'GETNAME'])));
      assert.deepEqual(names, ['factline-test-a', 'factline-test-b', 'factline-test-a-read']);
    } finally {
      await Promise.all(clients.map(closeClient));
    }
  });
});

describe('closeClient', { skip }, () => {
  it('drops a connection whose server stopped answering what it was sent, within waitMs, and says it was late', async () => {
    // The graceful close waits for answers; the drop must end it even then (node-redis marks a closing client
    // not open while its connection is still up).
    const forwarder = await startForwarder(() => Number(new URL(redisUrl).port || 6379));
    try {
      const client = await openClient(`redis://127.0.0.1:${forwarder.port}`, settings('factline-test-silent'));
      assert.equal(await client.sendCommand(['PING']), 'PONG');
      forwarder.freeze();
      const unanswered = client.sendCommand(['PING']).then(
        () => 'answered',
        (error: unknown) => (error as Error).name,
      );
      const inTime = await settlesWithin(closeClient(client, 200), 5000, 'closeClient(client, 200)');
      assert.equal(inTime, false, 'the close was late');
      assert.notEqual(await settlesWithin(unanswered, 1000, 'the command sent before'), 'answered');
      assert.equal(client.isOpen, false);
    } finally {
      await forwarder.close();
    }
  });
});
