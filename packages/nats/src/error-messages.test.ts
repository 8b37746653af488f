import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isValidationError } from '@factline/core';
import { freePort, type PrivateServer, startPrivateServer } from './fixtures/private-server.ts';
import { natsUrl, removeStreams, testApplication } from './fixtures/server.ts';
import { getNatsTransport } from './messaging/nats-transport.ts';
import { getNatsRedriver } from './messaging/redriver.ts';

const servers: PrivateServer[] = [];
const privateServer = async (settings: Parameters<typeof startPrivateServer>[0]) => {
  const server = await startPrivateServer(settings);
  if ('reason' in server) throw new Error(server.reason);
  servers.push(server);
  return server;
};

after(async () => {
  await Promise.all(servers.map((server) => server.stop()));
});

type Failure = Error & { code?: string; retryable?: boolean };

describe('getNatsTransport refuses what cannot work, with typed errors', () => {
  it('a URL that is no URL, or not nats/tls, is a ValidationError naming the option', async () => {
    for (const url of ['not a url', 'http://127.0.0.1:4222', 'nats://']) {
      await assert.rejects(getNatsTransport({ url, application: 'a' }), (error: Failure) => {
        assert.equal(error.code, 'VALIDATION', url);
        assert.match(error.message, /getNatsTransport\.url/);
        return true;
      });
    }
  });

  it('an unknown or bad option is a ValidationError, with a hint for a misspelt one', async () => {
    const given = { url: natsUrl, application: 'a', partition: 2 } as never;
    await assert.rejects(getNatsTransport(given), /getNatsTransport\.partition.*did you mean 'partitions'/);
    await assert.rejects(getNatsTransport({ url: natsUrl, application: 'has.dot' }), {
      code: 'VALIDATION',
      message: /getNatsTransport\.application/,
    });
    await assert.rejects(getNatsTransport({ url: natsUrl, application: 'a', ackWaitMs: 10 }), { code: 'VALIDATION' });
  });

  it("a timer's delay above 2147483647 is a ValidationError naming the option (Node fires a longer timer after 1 ms)", async () => {
    const over = 2 ** 31;
    const application = testApplication('timers');
    const opens = [
      ...(['ackWaitMs', 'claimTtlMs', 'connectTimeoutMs', 'reconnectWaitMs'] as const).map(
        (option) =>
          [
            `getNatsTransport.${option}`,
            async () => (await getNatsTransport({ url: natsUrl, application, [option]: over })).close(),
          ] as const,
      ),
      [
        'getNatsRedriver.connectTimeoutMs',
        async () => (await getNatsRedriver({ url: natsUrl, application, connectTimeoutMs: over })).close(),
      ] as const,
    ];
    try {
      for (const [path, open] of opens) {
        // Opened anyway (where the server answers): closed at once, and the check fails naming the option.
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
    } finally {
      await removeStreams([application]);
    }
  });

  it('an unreachable server: a retryable TransportError naming the address', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    await assert.rejects(getNatsTransport({ url, application: 'a', connectTimeoutMs: 2000 }), (error: Failure) => {
      assert.equal(error.code, 'TRANSPORT');
      assert.equal(error.retryable, true);
      assert.match(error.message, /unreachable/);
      assert.match(error.message, /127\.0\.0\.1/);
      return true;
    });
  });

  it('a server without JetStream: a TransportError that is not retryable and says how to enable it', async () => {
    const server = await privateServer({ jetstream: false });
    await assert.rejects(getNatsTransport({ url: server.url, application: 'a' }), (error: Failure) => {
      assert.equal(error.code, 'TRANSPORT');
      assert.equal(error.retryable, false);
      assert.match(error.message, /JetStream disabled.*-js/);
      return true;
    });
  });

  it('refused credentials: a TransportError that is not retryable, without the password; the right ones connect', async () => {
    const server = await privateServer({ jetstream: true, user: 'app', pass: 'right-secret' });
    const url = `nats://app:wrong-secret@127.0.0.1:${server.port}`;
    await assert.rejects(getNatsTransport({ url, application: 'a' }), (error: Failure) => {
      assert.equal(error.code, 'TRANSPORT');
      assert.equal(error.retryable, false);
      assert.match(error.message, /refused the credentials/);
      assert.doesNotMatch(error.message, /wrong-secret/);
      return true;
    });
    const transport = await getNatsTransport({
      url: `nats://app:right-secret@127.0.0.1:${server.port}`,
      application: 'a',
    });
    assert.equal(transport.connected(), true);
    await transport.close();
  });

  it('a refused token (nats://<token>@host): not retryable, and no message shows the token, refused or right', async () => {
    const server = await privateServer({ jetstream: true, token: 'right-t0ken' });
    const url = `nats://wrong-t0ken@127.0.0.1:${server.port}`;
    await assert.rejects(getNatsTransport({ url, application: 'a' }), (error: Failure) => {
      assert.equal(error.code, 'TRANSPORT');
      assert.equal(error.retryable, false);
      assert.match(error.message, /refused the credentials/);
      assert.match(error.message, /nats:\/\/\*\*\*@127\.0\.0\.1/);
      assert.doesNotMatch(error.message, /t0ken/);
      return true;
    });
    const errors: unknown[] = [];
    const right = `nats://right-t0ken@127.0.0.1:${server.port}`;
    const transport = await getNatsTransport({ url: right, application: 'a', onError: (error) => errors.push(error) });
    assert.equal(transport.connected(), true);
    // The server goes away: what the transport tells of the lost connection names the server without the token.
    await server.stopServer();
    const deadline = Date.now() + 10_000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await transport.close();
    assert.ok(errors.length > 0, 'the lost connection was told');
    for (const error of errors) assert.doesNotMatch(String((error as Error).message), /t0ken/);
    assert.ok(errors.some((error) => /\*\*\*@127\.0\.0\.1/.test(String((error as Error).message))));
  });
});
