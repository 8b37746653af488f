import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { createMessage, isValidationError, TransportError } from '@factline/core';
import { createClient, ErrorReply, TimeoutError } from 'redis';
import { commandError } from './connection.ts';
import { startPrivateServer } from './fixtures/private-server.ts';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from './fixtures/server.ts';
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
    for (const url of ['not a url', 'http://127.0.0.1:6379', 'redis://', 'redis://127.0.0.1:6379/orders']) {
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
    for (const open of [getRedisTransport, getRedisInbox]) {
      await assert.rejects(open({ url: redisUrl, application: 'a', allowEviction: 'yes' as never }), {
        code: 'VALIDATION',
        message: /\.allowEviction.*must be true or false/,
      });
    }
  });

  it("a timer's delay above 2147483647 is a ValidationError naming the option (Node fires a longer timer after 1 ms)", async () => {
    const over = 2 ** 31;
    const transportOptions = ['leaseMs', 'blockMs', 'reconnectMinMs', 'reconnectMaxMs', 'connectTimeoutMs'] as const;
    const opens = [
      ...transportOptions.map(
        (option) =>
          [
            `getRedisTransport.${option}`,
            () => getRedisTransport({ url: redisUrl, application: 'a', [option]: over }),
          ] as const,
      ),
      ...(['claimMs', 'connectTimeoutMs'] as const).map(
        (option) =>
          [
            `getRedisInbox.${option}`,
            () => getRedisInbox({ url: redisUrl, application: 'a', [option]: over }),
          ] as const,
      ),
    ];
    for (const [path, open] of opens) {
      // Opened anyway (where the server answers): closed at once, and the check fails naming the option.
      const outcome: unknown = await open().then(
        async (opened) => {
          await opened.close();
          return 'opened';
        },
        (error: unknown) => error,
      );
      assert.ok(isValidationError(outcome), `${path}: expected a ValidationError, got ${String(outcome)}`);
      assert.deepEqual(
        outcome.issues.map((issue) => issue.path),
        [path],
      );
    }
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

describe('a command that fails is a TransportError naming what it did', () => {
  it('retryable when the connection or the server state was the cause, not when Redis refused the command', () => {
    const cases: [unknown, boolean][] = [
      [new TimeoutError('Command timed out after 5000ms waiting to be sent'), true],
      [new Error('Socket closed unexpectedly'), true],
      [new ErrorReply('LOADING Redis is loading the dataset in memory'), true],
      [new ErrorReply('OOM command not allowed when used memory > maxmemory'), true],
      [
        new ErrorReply('MISCONF Redis is configured to save RDB snapshots, but it is currently unable to persist'),
        true,
      ],
      [new ErrorReply('NOREPLICAS Not enough good replicas to write. script: 90c1c3b7, on @user_script:3.'), true],
      [new ErrorReply('WRONGTYPE Operation against a key holding the wrong kind of value'), false],
      [new ErrorReply('NOPERM this user has no permissions to run the xadd command'), false],
    ];
    for (const [cause, retryable] of cases) {
      const error = commandError(cause, 'publishing to orders on Redis') as Failure;
      assert.equal(error.code, 'TRANSPORT', String(cause));
      assert.equal(error.retryable, retryable, String(cause));
      assert.match(error.message, /^publishing to orders on Redis failed: /);
    }
    const readOnly = commandError(new ErrorReply("READONLY You can't write against a read only replica."), 'acking');
    assert.match(
      String((readOnly as Failure).message),
      /read only replica\. \(the server is a replica now, as after a failover: the URL must name the primary\)$/,
    );
    const full = commandError(new ErrorReply('OOM command not allowed when used memory > maxmemory.'), 'publishing');
    assert.match(
      String((full as Failure).message),
      /\(the server is full \(maxmemory, noeviction\): writes are refused until memory is freed\)$/,
    );
    const noReplicas = commandError(new ErrorReply('NOREPLICAS Not enough good replicas to write.'), 'acking');
    assert.match(String((noReplicas as Failure).message), /\(fewer replicas than min-replicas-to-write are connected/);
    const typed = new TransportError('already typed');
    assert.equal(commandError(typed, 'anything'), typed, 'a Factline error passes as it is');
  });

  it('a publish Redis refuses (a stream key holding a string) rejects with one that is not retryable', async (t) => {
    const unavailable = await redisUnavailable();
    if (unavailable) return t.skip(unavailable);
    const application = testApplication('refused');
    const transport = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    const client = createClient({ url: redisUrl });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await transport.declareSubscription('orders', 'billing');
      await client.sendCommand(['DEL', `${application}:stream:orders:0`]);
      await client.sendCommand(['SET', `${application}:stream:orders:0`, 'not a stream']);
      await assert.rejects(
        transport.publish('orders', [createMessage({ type: 'OrderPlaced', data: {} })]),
        (error: Failure) => {
          assert.equal(error.code, 'TRANSPORT');
          assert.equal(error.retryable, false);
          assert.match(error.message, /publishing to orders on Redis failed: .*WRONGTYPE/);
          return true;
        },
      );
    } finally {
      await transport.close();
      await client.close();
      await removeKeys(application);
    }
  });
});
