import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createConsumer, createMessage, getInMemoryDeadLetterStore } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { makeTestCertificates } from '../../core/src/testing/fixtures/certificates.ts';
import {
  assertHandledOnceInKeyOrder,
  assertRedrivesToGroup,
  refusedWith,
  refusesToOpen,
} from '../../core/src/testing/fixtures/transport-checks.ts';
import { type PrivateServer, showLogOnFailure, startPrivateServer } from './fixtures/private-server.ts';
import { testApplication } from './fixtures/server.ts';
import { getNatsTransport } from './messaging/nats-transport.ts';
import { getNatsRedriver } from './messaging/redriver.ts';

// tls:// against a private nats-server that serves TLS only and verifies clients (--tlsverify), with
// certificates made for it by openssl (a CA of its own, as a company's NATS has): the transport, a consumer
// and the redriver over it, and the typed errors of a handshake that cannot succeed. One server for the file,
// thrown away with its streams at the end.
const started = await startPrivateServer({ jetstream: true, tls: 'verify-clients' });
showLogOnFailure(started);
if ('reason' in started && process.env.FACTLINE_REQUIRE_SERVICES === '1') {
  throw new Error(`FACTLINE_REQUIRE_SERVICES=1: no private nats-server over TLS: ${started.reason}`);
}
const skip = 'reason' in started ? `no private nats-server over TLS: ${started.reason}` : false;
if (skip) console.log(`# skipped: ${skip}`);
const server = 'reason' in started ? undefined : started;
const others: PrivateServer[] = [];
const strangerDir = mkdtempSync(join(tmpdir(), 'factline-nats-stranger-'));
after(async () => {
  await Promise.all(others.map((other) => other.stop()));
  await server?.stop();
  rmSync(strangerDir, { recursive: true, force: true });
});

type Failure = Error & { code?: string; retryable?: boolean };
type Certificates = NonNullable<PrivateServer['certificates']>;

// The skip on each case, not the suite: the run's summary then counts the cases under the reason.
describe('NATS over TLS (tls://)', () => {
  let tlsServer: PrivateServer;
  let certificates: Certificates;
  let tls: { ca: string; cert: string; key: string };
  before(() => {
    if (!server) return;
    tlsServer = server;
    certificates = tlsServer.certificates as Certificates;
    const { ca, cert, key } = certificates;
    tls = { ca, cert, key };
  });

  it('the transport and a consumer work over TLS with a CA and a client certificate: every message handled once, each key in order', {
    skip,
  }, async () => {
    const application = testApplication('tls');
    const transport = await getNatsTransport({ url: tlsServer.url, application, tls, partitions: 2 });
    try {
      await assertHandledOnceInKeyOrder(transport, { deadLetters: getInMemoryDeadLetterStore() });
    } finally {
      await transport.close();
    }
  });

  it('after the server restarts, the transport reconnects over TLS: a message published after it is handled', {
    skip,
  }, async () => {
    const application = testApplication('tls-restart');
    const began = Date.now();
    const reported: string[] = [];
    const transport = await getNatsTransport({
      url: tlsServer.url,
      application,
      tls: { ...tls, ca: [Buffer.from(tls.ca)] },
      reconnectWaitMs: 100,
      // Claims left over from before the restart expire within it: the partitions are pulled again soon after.
      claimTtlMs: 1000,
      // A partition whose ack state the restarted server got wrong is gated until its messages come back, after
      // the ack wait: 3 s here, so that the case's 20 s cover it (once, in CI, nothing was handled within 10 s
      // while nothing was reported, as a gated partition is silent).
      ackWaitMs: 3000,
      // Shown if the case fails: what the transport went through across the restart.
      onError: (error, { stage }) => reported.push(`+${Date.now() - began} ms ${stage} ${String(error)}`),
    });
    const handled: string[] = [];
    const consumer = createConsumer({
      name: 'billing',
      topic: 'orders',
      transport,
      deadLetters: getInMemoryDeadLetterStore(),
      onError: (error, { stage }) => reported.push(`+${Date.now() - began} ms consumer ${stage} ${String(error)}`),
      handler: (message) => {
        handled.push(message.id);
      },
    });
    try {
      await consumer.start();
      const first = createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} });
      await transport.publish('orders', [first]);
      await waitUntil(() => handled.includes(first.id), 'the message before the restart to be handled');
      // Its ack reached the server first: an ack lost in the restart would keep the partition gated until the
      // message came back (the ack wait, 30 s), which is not what this case is about.
      await waitUntil(
        async () => (await transport.backlog?.('orders', 'billing'))?.messages === 0,
        'the ack of the message before the restart to reach the server',
      );
      await tlsServer.restart();
      await waitUntil(() => transport.connected(), 'the transport to reconnect over TLS');
      const second = createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} });
      // A publish the stream cannot take yet (JetStream still starting) is tried again until it does.
      await waitUntil(
        () =>
          transport.publish('orders', [second]).then(
            () => true,
            () => false,
          ),
        'a publish after the restart to be taken',
      );
      await waitUntil(
        () => handled.includes(second.id),
        'the message published after the restart to be handled',
        20_000,
      );
    } catch (error) {
      console.log(
        `# the transport reported (${reported.length}):\n${reported.map((line) => `#   ${line}`).join('\n')}`,
      );
      throw error;
    } finally {
      await consumer.stop();
      await transport.close();
    }
  });

  it('the redriver connects over TLS: it counts the group the transport declared and redelivers into it; without a client certificate it is refused', {
    skip,
  }, async () => {
    const application = testApplication('tls-redrive');
    const transport = await getNatsTransport({ url: tlsServer.url, application, tls, partitions: 2 });
    const redriver = await getNatsRedriver({ url: tlsServer.url, application, tls: { ...tls, ca: [tls.ca] } });
    try {
      await assertRedrivesToGroup(transport, redriver, 2);
    } finally {
      await redriver.close();
      await transport.close();
    }
    await refusesToOpen(
      getNatsRedriver({ url: tlsServer.url, application, tls: { ca: tls.ca }, connectTimeoutMs: 1000 }),
      refusedWith(/requires a client certificate: give tls\.cert and tls\.key/),
    );
  });

  it('a server certificate Node does not trust fails at once, not retryable, saying to give its CA in tls.ca', {
    skip,
  }, async () => {
    const begun = Date.now();
    await refusesToOpen(
      getNatsTransport({ url: tlsServer.url, application: 'a', tls: { cert: tls.cert, key: tls.key } }),
      refusedWith(/TLS handshake failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE.*give the CA that signed it in tls\.ca/),
    );
    // A tls:// URL without the option: Node's CAs only.
    await refusesToOpen(
      getNatsRedriver({ url: tlsServer.url, application: 'a' }),
      refusedWith(/certificate is not trusted/),
    );
    assert.ok(Date.now() - begun < 5000, 'within the connect timeout');
  });

  it('a server that verifies clients refuses a connection without a client certificate: not retryable, naming tls.cert and tls.key, told after the connect timeout', {
    skip,
  }, async () => {
    const begun = Date.now();
    await refusesToOpen(
      getNatsTransport({ url: tlsServer.url, application: 'a', tls: { ca: tls.ca }, connectTimeoutMs: 1000 }),
      (error: Failure) => {
        refusedWith(/TLS handshake failed \(ERR_SSL_.*requires a client certificate: give tls\.cert and tls\.key/)(
          error,
        );
        assert.match(String((error.cause as Failure | undefined)?.code), /^ERR_SSL_/, "the cause is Node's TLS error");
        return true;
      },
    );
    // The client's timeout, then one attempt that does not reconnect (at most 2 s).
    assert.ok(Date.now() - begun < 1000 + 2000 + 1000, `within the connect timeout and the second attempt`);
  });

  it("a client certificate from a CA the server does not trust, or a key that is not the certificate's, is refused: not retryable, saying so", {
    skip,
  }, async () => {
    const stranger = makeTestCertificates(strangerDir);
    await refusesToOpen(
      getNatsTransport({
        url: tlsServer.url,
        application: 'a',
        tls: { ca: tls.ca, cert: stranger.cert, key: stranger.key },
        connectTimeoutMs: 1000,
      }),
      refusedWith(/TLS handshake failed \(ERR_SSL_.*ALERT.*the server refused the client certificate \(tls\.cert\)/),
    );
    // Our certificate with the other one's key: refused before anything is sent.
    await refusesToOpen(
      getNatsRedriver({ url: tlsServer.url, application: 'a', tls: { ca: tls.ca, cert: tls.cert, key: stranger.key } }),
      refusedWith(/X509_KEY_VALUES_MISMATCH.*a tls\.key that is not tls\.cert's/),
    );
  });

  it('an encrypted client key opens with tls.passphrase; a wrong one is refused at once, not retryable, naming tls.passphrase', {
    skip,
  }, async () => {
    const { encryptedKey, passphrase } = certificates;
    const redriver = await getNatsRedriver({
      url: tlsServer.url,
      application: 'a',
      tls: { ...tls, key: encryptedKey, passphrase },
    });
    await redriver.close();
    await refusesToOpen(
      getNatsTransport({
        url: tlsServer.url,
        application: 'a',
        tls: { ...tls, key: encryptedKey, passphrase: 'wrong' },
      }),
      refusedWith(
        /TLS handshake failed \((ERR_OSSL_BAD_DECRYPT|ERR_OSSL_UNSUPPORTED).*wrong or missing tls\.passphrase/,
      ),
    );
  });

  it('a certificate that does not name the host is refused, pointing at tls.servername; servername makes it pass, as does a URL naming the host', {
    skip,
  }, async () => {
    await refusesToOpen(
      getNatsTransport({ url: tlsServer.url, application: 'a', tls: { ...tls, servername: 'nats.example' } }),
      refusedWith(/ERR_TLS_CERT_ALTNAME_INVALID.*does not name the host.*tls\.servername/),
    );
    const redriver = await getNatsRedriver({
      url: tlsServer.url,
      application: 'a',
      tls: { ...tls, servername: 'localhost' },
    });
    await redriver.close();
    const byName = await getNatsRedriver({ url: `tls://localhost:${tlsServer.port}`, application: 'a', tls });
    await byName.close();
  });

  it('a tls:// URL to a server without TLS is refused, not retryable, rather than connecting in plain text', {
    skip,
  }, async () => {
    const plain = await startPrivateServer({ jetstream: false });
    if ('reason' in plain) throw new Error(plain.reason);
    others.push(plain);
    await refusesToOpen(
      getNatsRedriver({ url: plain.url.replace('nats:', 'tls:'), application: 'a', tls: { ca: tls.ca } }),
      refusedWith(/does not offer TLS, which a tls:\/\/ URL requires/),
    );
  });

  it('bad TLS settings, and tls with a URL that is not tls://, are a ValidationError before anything connects', {
    skip,
  }, async () => {
    const plainUrl = tlsServer.url.replace('tls:', 'nats:');
    const cases: [Record<string, unknown>, 'transport' | 'redriver', RegExp][] = [
      [{ url: plainUrl, tls }, 'transport', /getNatsTransport\.tls.*is set, but the url is not tls:\/\//],
      [{ url: plainUrl, tls }, 'redriver', /getNatsRedriver\.tls.*is set, but the url is not tls:\/\//],
      [
        { url: `${tlsServer.url},nats://127.0.0.1:4222`, tls },
        'transport',
        /getNatsTransport\.url.*mixes nats:\/\/ and tls:\/\/ servers/,
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
      [{ url: tlsServer.url, tls: { ...tls, servername: '' } }, 'transport', /servername must be a non-empty string/],
      [{ url: tlsServer.url, tls: 'yes' }, 'transport', /getNatsTransport\.tls.*must be an object/],
      [
        { url: tlsServer.url, tls: { ...tls, ca: [tls.ca, 42] } },
        'redriver',
        /getNatsRedriver\.tls.*ca\[1\] must be PEM text/,
      ],
    ];
    for (const [options, kind, pattern] of cases) {
      const opening =
        kind === 'transport'
          ? getNatsTransport({ application: 'a', ...options } as never)
          : getNatsRedriver({ application: 'a', ...options } as never);
      await refusesToOpen(opening, (error: Failure) => {
        assert.equal(error.code, 'VALIDATION', `${JSON.stringify(options.url)}: ${error.message}`);
        assert.match(error.message, pattern);
        return true;
      });
    }
  });
});
