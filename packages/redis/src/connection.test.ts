import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { startForwarder } from '../../core/src/testing/fixtures/forwarder.ts';
import { closeClient, openClient, type RedisClient } from './connection.ts';
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

  it('ends when the connection is reset while the close waits for answers, and says it was late', async () => {
    // node-redis 6.4 ends neither its close() nor, once dropped, the client when the connection fails while a
    // close drains: the close waited on that for ever.
    const forwarder = await startForwarder(() => Number(new URL(redisUrl).port || 6379));
    try {
      const client = await openClient(`redis://127.0.0.1:${forwarder.port}`, settings('factline-test-reset'));
      assert.equal(await client.sendCommand(['PING']), 'PONG');
      forwarder.freeze();
      const unanswered = client.sendCommand(['PING']).then(
        () => 'answered',
        (error: unknown) => (error as Error).name,
      );
      const closing = closeClient(client, 500);
      await waitUntil(() => !client.isOpen, 'the close to begin', 2000);
      forwarder.reset();
      const inTime = await settlesWithin(closing, 5000, 'closeClient(client, 500) after the reset');
      assert.equal(inTime, false, 'the close was late');
      assert.notEqual(await settlesWithin(unanswered, 1000, 'the command sent before'), 'answered');
    } finally {
      await forwarder.close();
    }
  });
});

describe('the silence watch', { skip }, () => {
  it('drops a connection whose commands waited silentMs with nothing back, tells onError, and makes it again', async () => {
    // Also the alarm for a node-redis without the internal reset it uses: the command would then wait on.
    const forwarder = await startForwarder(() => Number(new URL(redisUrl).port || 6379));
    const told: string[] = [];
    const client = await openClient(`redis://127.0.0.1:${forwarder.port}`, {
      ...settings('factline-test-watch'),
      silentMs: 300,
      onError: (error) => told.push(String(error)),
    });
    try {
      forwarder.freeze();
      const outcome = await settlesWithin(
        client.sendCommand(['PING']).then(
          () => 'answered',
          (error: Error) => error.message,
        ),
        5000,
        'a PING on the silent connection',
      );
      assert.match(
        outcome,
        /sent nothing back for 300 ms while 1 command\(s\) waited: the connection is dropped and made again/,
      );
      assert.ok(
        told.some((t) => /sent nothing back for 300 ms/.test(t)),
        `onError told: ${told.join(' | ')}`,
      );
      forwarder.thaw();
      assert.equal(
        await waitUntil(
          () => client.sendCommand(['PING']).catch(() => undefined),
          'a PING answered on the connection made again',
          5000,
          50,
        ),
        'PONG',
      );
    } finally {
      await closeClient(client, 200);
      await forwarder.close();
    }
  });

  it('leaves a connection alone while it answers, however long it is idle', async () => {
    const told: string[] = [];
    const client = await openClient(redisUrl, {
      ...settings('factline-test-watch-idle'),
      silentMs: 500,
      onError: (error) => told.push(String(error)),
    });
    try {
      // Idle for three times silentMs (nothing waiting is no silence), then answered at once.
      const idleFrom = Date.now();
      await waitUntil(() => Date.now() - idleFrom >= 1500, 'three silences idle', 5000, 20);
      assert.equal(await client.sendCommand(['PING']), 'PONG');
      assert.deepEqual(told, []);
    } finally {
      await closeClient(client);
    }
  });

  it('leaves an answering connection alone when the wall clock steps forward while a command waits', async () => {
    const told: string[] = [];
    const client = await openClient(redisUrl, {
      ...settings('factline-test-watch-step'),
      silentMs: 3000,
      onError: (error) => told.push(String(error)),
    });
    const realNow = Date.now;
    try {
      // A blocking read waits 1.5 s, within silentMs, and is answered at its end (nil); the watch looks every
      // 750 ms. By the wall clock, stepped a minute forward while it waits, it would have waited a minute.
      const key = `factline-test-watch-step-${process.pid}`;
      const waiting = client.sendCommand(['BLPOP', key, '1.5']);
      Date.now = () => realNow() + 60_000;
      assert.equal(await waiting, null, 'answered at the end of its block, on the same connection');
      assert.equal(await client.sendCommand(['PING']), 'PONG');
      assert.deepEqual(told, [], 'nothing was dropped');
    } finally {
      Date.now = realNow;
      await closeClient(client);
    }
  });
});
