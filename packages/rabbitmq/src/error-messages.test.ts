import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { isValidationError } from '@factline/core';
import { amqpUrl, rabbitUnavailable, removeTopology, testApplication } from './fixtures/server.ts';
import { getRabbitTransport } from './messaging/rabbitmq-transport.ts';
import { getRabbitRedriver } from './messaging/redriver.ts';

const skip = await rabbitUnavailable();

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });

describe('getRabbitTransport refuses what cannot work, with typed errors', () => {
  it('a URL that is no URL, or not amqp(s), is a ValidationError naming the option', async () => {
    for (const url of ['not a url', 'http://127.0.0.1:5672', 'amqp://']) {
      await assert.rejects(getRabbitTransport({ url, application: 'a' }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'VALIDATION', url);
        assert.match(error.message, /getRabbitTransport\.url/);
        return true;
      });
    }
  });

  it('an unknown or bad option is a ValidationError, with a hint for a misspelt one', async () => {
    const given = { url: amqpUrl, application: 'a', partition: 2 } as never;
    await assert.rejects(getRabbitTransport(given), /getRabbitTransport\.partition.*did you mean 'partitions'/);
    await assert.rejects(getRabbitTransport({ url: amqpUrl, application: 'has space' }), {
      code: 'VALIDATION',
      message: /getRabbitTransport\.application/,
    });
    await assert.rejects(getRabbitTransport({ url: amqpUrl, application: 'a', prefetch: 0 }), { code: 'VALIDATION' });
  });

  it("a timer's delay above 2147483647 is a ValidationError naming the option (Node fires a longer timer after 1 ms)", async () => {
    const over = 2 ** 31;
    const application = testApplication('timers');
    const opens = [
      ...(['reconnectMinMs', 'reconnectMaxMs', 'connectTimeoutMs', 'publishTimeoutMs'] as const).map(
        (option) =>
          [
            `getRabbitTransport.${option}`,
            async () => {
              const transport = await getRabbitTransport({ url: amqpUrl, application, [option]: over });
              await transport.close();
              await removeTopology([transport]);
            },
          ] as const,
      ),
      [
        'getRabbitRedriver.connectTimeoutMs',
        async () => (await getRabbitRedriver({ url: amqpUrl, application, connectTimeoutMs: over })).close(),
      ] as const,
    ];
    for (const [path, open] of opens) {
      // Opened anyway (where the broker answers): closed at once, and the check fails naming the option.
      const outcome: unknown = await open().then(
        () => 'opened',
        (error: unknown) => error,
      );
      assert.ok(isValidationError(outcome), `${path}: expected a ValidationError, got ${String(outcome)}`);
      assert.deepEqual(
        outcome.issues.map((issue) => issue.path),
        [path],
      );
    }
  });

  it('an unreachable broker: a retryable TransportError naming the address', async () => {
    const url = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
    await assert.rejects(
      getRabbitTransport({ url, application: 'a', connectTimeoutMs: 2000 }),
      (
        error: Error & {
          code?: string;
          retryable?: boolean;
        },
      ) => {
        assert.equal(error.code, 'TRANSPORT');
        assert.equal(error.retryable, true);
        assert.match(error.message, /unreachable/);
        assert.match(error.message, /127\.0\.0\.1/);
        return true;
      },
    );
  });

  it('refused credentials: a TransportError that is not retryable, without the password', { skip }, async () => {
    const url = amqpUrl.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:wrong-secret@');
    await assert.rejects(
      getRabbitTransport({ url, application: 'a' }),
      (
        error: Error & {
          code?: string;
          retryable?: boolean;
        },
      ) => {
        assert.equal(error.code, 'TRANSPORT');
        assert.equal(error.retryable, false);
        assert.match(error.message, /refused the credentials/);
        assert.doesNotMatch(error.message, /wrong-secret/);
        return true;
      },
    );
  });
});
