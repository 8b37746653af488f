import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { startPrivateServer } from './fixtures/private-server.ts';
import { redisUrl } from './fixtures/server.ts';
import { getRedisInbox } from './messaging/redis-inbox.ts';
import { getRedisTransport } from './messaging/redis-transport.ts';

const secured = await startPrivateServer({ password: 'right-secret' });
after(async () => {
  if (!('reason' in secured)) await secured.stop();
});

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });

type Failure = Error & { code?: string; retryable?: boolean };

describe('getRedisTransport and getRedisInbox refuse what cannot work, with typed errors', () => {
  it('a URL that is no URL, or not redis(s), is a ValidationError naming the option', async () => {
    for (const url of ['not a url', 'http://127.0.0.1:6379', 'redis://']) {
      await assert.rejects(getRedisTransport({ url, application: 'a' }), (error: Failure) => {
        assert.equal(error.code, 'VALIDATION', url);
        assert.match(error.message, /getRedisTransport\.url/);
        return true;
      });
    }
    await assert.rejects(getRedisInbox({ url: 'amqp://x', application: 'a' }), {
      code: 'VALIDATION',
      message: /getRedisInbox\.url/,
    });
  });

  it('an unknown or bad option is a ValidationError, with a hint for a misspelt one', async () => {
    const given = { url: redisUrl, application: 'a', partition: 2 } as never;
    await assert.rejects(getRedisTransport(given), /getRedisTransport\.partition.*did you mean 'partitions'/);
    await assert.rejects(getRedisTransport({ url: redisUrl, application: 'has space' }), {
      code: 'VALIDATION',
      message: /getRedisTransport\.application/,
    });
    await assert.rejects(getRedisTransport({ url: redisUrl, application: 'a', leaseMs: 0 }), { code: 'VALIDATION' });
    await assert.rejects(getRedisInbox({ url: redisUrl, application: 'a', retentionMs: -1 }), { code: 'VALIDATION' });
  });

  it('an unreachable server: a retryable TransportError naming the address', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    await assert.rejects(getRedisTransport({ url, application: 'a', connectTimeoutMs: 2000 }), (error: Failure) => {
      assert.equal(error.code, 'TRANSPORT');
      assert.equal(error.retryable, true);
      assert.match(error.message, /unreachable/);
      assert.match(error.message, /127\.0\.0\.1/);
      return true;
    });
  });

  it('refused credentials: a TransportError that is not retryable, without the password', {
    skip: 'reason' in secured ? secured.reason : false,
  }, async () => {
    if ('reason' in secured) return;
    const url = `redis://default:wrong-secret@127.0.0.1:${secured.port}`;
    // One at a time: a second attempt made up front would reject while the first is awaited (unhandled).
    const attempts = [
      () => getRedisTransport({ url, application: 'a' }),
      () => getRedisInbox({ url, application: 'a' }),
    ];
    for (const attempt of attempts) {
      await assert.rejects(attempt(), (error: Failure) => {
        assert.equal(error.code, 'TRANSPORT');
        assert.equal(error.retryable, false);
        assert.match(error.message, /refused the credentials/);
        assert.doesNotMatch(error.message, /wrong-secret/);
        return true;
      });
    }
    const transport = await getRedisTransport({
      url: `redis://default:right-secret@127.0.0.1:${secured.port}`,
      application: 'a',
    });
    await transport.close();
  });
});
