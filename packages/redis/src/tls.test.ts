import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConsumer, createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import {
  assertHandledOnceInKeyOrder,
  refusedWith,
  refusesToOpen,
} from '../../core/src/testing/fixtures/transport-checks.ts';
import { type PrivateServer, startPrivateServer } from './fixtures/private-server.ts';
import { testApplication } from './fixtures/server.ts';
import { getRedisInbox } from './messaging/redis-inbox.ts';
import { getRedisTransport } from './messaging/redis-transport.ts';

// rediss:// against a private redis-server that serves TLS only, with certificates made for it by openssl
// (a CA of its own, as a company's Redis has): the transport and the inbox over it, and the typed errors of
// a handshake that cannot succeed.
const started = await startPrivateServer({ tls: 'verify-clients' });
const skip = 'reason' in started ? started.reason : false;
const server = 'reason' in started ? undefined : started;
after(async () => {
  await server?.stop();
});

type Failure = Error & { code?: string; retryable?: boolean };

describe('Redis over TLS (rediss://)', { skip }, () => {
  let tlsServer: PrivateServer;
  let tls: { ca: string; cert: string; key: string };
  before(() => {
    tlsServer = server as PrivateServer;
    const { ca, cert, key } = tlsServer.certificates as NonNullable<PrivateServer['certificates']>;
    tls = { ca, cert, key };
  });

  it('the transport and the Redis inbox work over TLS with a CA and a client certificate: every message handled once, each key in order', async () => {
    const application = testApplication('tls');
    const transport = await getRedisTransport({ url: tlsServer.url, application, tls, partitions: 2 });
    const inbox = await getRedisInbox({ url: tlsServer.url, application, tls: { ...tls, ca: [tls.ca] } });
    try {
      await assertHandledOnceInKeyOrder(transport, { inbox });
    } finally {
      await inbox.close();
      await transport.close();
    }
  });

  it('after the server restarts, the transport and the inbox reconnect over TLS: a message published after it is handled', async () => {
    const application = testApplication('tls-restart');
    const transport = await getRedisTransport({ url: tlsServer.url, application, tls, onError: () => undefined });
    const inbox = await getRedisInbox({ url: tlsServer.url, application, tls, onError: () => undefined });
    const handled: string[] = [];
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      inbox,
      onError: () => undefined,
      handler: (message) => {
        handled.push(message.id);
      },
    });
    try {
      await consumer.start();
      const before = createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} });
      await transport.publish('orders', [before]);
      await waitUntil(() => handled.includes(before.id), 'the message before the restart to be handled');
      await tlsServer.restart();
      const after = createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} });
      // The publish fails while the transport reconnects; it is tried again until Redis takes it.
      await waitUntil(
        () =>
          transport.publish('orders', [after]).then(
            () => true,
            () => false,
          ),
        'a publish after the restart to be taken',
      );
      await waitUntil(() => handled.includes(after.id), 'the message published after the restart to be handled');
    } finally {
      await consumer.stop();
      await inbox.close();
      await transport.close();
    }
  });

  it('a server certificate Node does not trust fails at once, not retryable, saying to give its CA in tls.ca', async () => {
    const started = Date.now();
    await assert.rejects(
      getRedisTransport({ url: tlsServer.url, application: 'a', tls: { cert: tls.cert, key: tls.key } }),
      refusedWith(/TLS handshake failed \(SELF_SIGNED_CERT_IN_CHAIN.*give the CA that signed it in tls\.ca/),
    );
    await assert.rejects(
      getRedisInbox({ url: tlsServer.url, application: 'a' }),
      refusedWith(/certificate is not trusted/),
    );
    assert.ok(Date.now() - started < 5000, 'within the connect timeout');
  });

  it('a server that verifies clients refuses a connection without a client certificate: not retryable, naming tls.cert and tls.key', async () => {
    await assert.rejects(
      getRedisTransport({ url: tlsServer.url, application: 'a', tls: { ca: tls.ca } }),
      refusedWith(/requires a client certificate: give tls\.cert and tls\.key/),
    );
  });

  it("a client certificate from a CA the server does not trust, or a key that is not the certificate's, is refused: not retryable, saying so", async () => {
    const stranger = await startPrivateServer({ tls: 'server-only' });
    if ('reason' in stranger) throw new Error(stranger.reason);
    try {
      const { cert, key } = stranger.certificates as NonNullable<PrivateServer['certificates']>;
      await assert.rejects(
        getRedisInbox({ url: tlsServer.url, application: 'a', tls: { ca: tls.ca, cert, key } }),
        refusedWith(
          /TLS handshake failed \(ERR_SSL_.*ALERT_UNKNOWN_CA.*the server refused the client certificate \(tls\.cert\)/,
        ),
      );
      // Our certificate with the other one's key: refused before anything is sent.
      await assert.rejects(
        getRedisInbox({ url: tlsServer.url, application: 'a', tls: { ca: tls.ca, cert: tls.cert, key } }),
        refusedWith(/X509_KEY_VALUES_MISMATCH.*a tls\.key that is not tls\.cert's/),
      );
    } finally {
      await stranger.stop();
    }
  });

  it('an encrypted client key opens with tls.passphrase; a wrong one is refused at once, not retryable, naming tls.passphrase', async () => {
    const { encryptedKey, passphrase } = tlsServer.certificates as NonNullable<PrivateServer['certificates']>;
    const inbox = await getRedisInbox({
      url: tlsServer.url,
      application: 'a',
      tls: { ...tls, key: encryptedKey, passphrase },
    });
    await inbox.close();
    await assert.rejects(
      getRedisTransport({
        url: tlsServer.url,
        application: 'a',
        tls: { ...tls, key: encryptedKey, passphrase: 'wrong' },
      }),
      refusedWith(
        /TLS handshake failed \((ERR_OSSL_BAD_DECRYPT|ERR_OSSL_UNSUPPORTED).*wrong or missing tls\.passphrase/,
      ),
    );
  });

  it('a certificate that does not name the host is refused, pointing at tls.servername; servername makes it pass', async () => {
    await assert.rejects(
      getRedisTransport({ url: tlsServer.url, application: 'a', tls: { ...tls, servername: 'redis.example' } }),
      refusedWith(/does not name the host.*tls\.servername/),
    );
    const transport = await getRedisTransport({
      url: tlsServer.url,
      application: 'a',
      tls: { ...tls, servername: 'localhost' },
    });
    await transport.close();
  });

  it('redis:// to the TLS port fails at once, not retryable, saying the port answers in TLS: use rediss://', async () => {
    const plain = tlsServer.url.replace('rediss:', 'redis:');
    await refusesToOpen(
      getRedisTransport({ url: plain, application: 'a' }),
      refusedWith(/port \d+ answers in TLS, and the URL asks for plain text .*use rediss:\/\//),
    );
    await refusesToOpen(getRedisInbox({ url: plain, application: 'a' }), refusedWith(/answers in TLS/));
  });

  it('bad TLS settings are a ValidationError before anything connects', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [
        { url: tlsServer.url.replace('rediss:', 'redis:'), tls },
        'transport',
        /getRedisTransport\.tls.*not rediss:\/\//,
      ],
      [
        { url: tlsServer.url, tls: { ...tls, rejectUnauthorized: false } },
        'transport',
        /has no field 'rejectUnauthorized'/,
      ],
      [
        { url: tlsServer.url, tls: { ca: '/etc/ssl/ca.pem' } },
        'transport',
        /ca must be PEM text \(the file's contents: read it with readFileSync\), got '\/etc\/ssl\/ca\.pem'/,
      ],
      [{ url: tlsServer.url, tls: { ca: tls.ca, cert: tls.cert } }, 'transport', /cert and key go together/],
      [{ url: tlsServer.url, tls: { ca: [] } }, 'transport', /ca must name at least one certificate/],
      [{ url: tlsServer.url, tls: { ca: tls.ca, passphrase: 'x' } }, 'transport', /passphrase goes with key/],
      [{ url: tlsServer.url, tls: 'yes' }, 'transport', /getRedisTransport\.tls.*must be an object/],
      [
        { url: tlsServer.url, tls: { ...tls, ca: [tls.ca, 42] } },
        'inbox',
        /getRedisInbox\.tls.*ca\[1\] must be PEM text/,
      ],
      [{ url: tlsServer.url.replace('rediss:', 'redis:'), tls }, 'inbox', /getRedisInbox\.tls.*not rediss:\/\//],
    ];
    for (const [options, kind, pattern] of cases) {
      const opening =
        kind === 'transport'
          ? getRedisTransport({ application: 'a', ...options } as never)
          : getRedisInbox({ application: 'a', ...options } as never);
      await assert.rejects(opening, (error: Failure) => {
        assert.equal(error.code, 'VALIDATION', `${JSON.stringify(Object.keys(options))}: ${error.message}`);
        assert.match(error.message, pattern);
        return true;
      });
    }
  });
});
