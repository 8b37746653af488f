import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getInMemoryDeadLetterStore } from '@factline/core';
import { makeTestCertificates } from '../../core/src/testing/fixtures/certificates.ts';
import {
  assertHandledOnceInKeyOrder,
  assertRedrivesToGroup,
  refusedWith as refused,
  refusesToOpen,
} from '../../core/src/testing/fixtures/transport-checks.ts';
import { type PrivateNode, startPrivateNode, type TestCertificates } from './fixtures/private-node.ts';
import { testApplication } from './fixtures/server.ts';
import { getRabbitTransport } from './messaging/rabbitmq-transport.ts';
import { getRabbitRedriver } from './messaging/redriver.ts';

// amqps:// against a private RabbitMQ node with a TLS listener that verifies clients (verify_peer,
// fail_if_no_peer_cert), with certificates made for it by openssl (a CA of its own, as a company's broker
// has): the transport, a consumer and the redriver over it, and the typed errors of a handshake that
// cannot succeed. One node for the whole file.
const started = await startPrivateNode({ tls: 'verify-clients' });
const skip = 'reason' in started ? `no private RabbitMQ node over TLS: ${started.reason}` : false;
if (skip) console.log(`# skipped: ${skip}`);
const node = 'reason' in started ? undefined : started;
after(async () => {
  await node?.stop();
});

type Failure = Error & { code?: string; retryable?: boolean };

/** A refusal whose message never shows the URL's password. */
const refusedWith = (pattern: RegExp) => refused(pattern, 'guest:guest');

// The skip on each case, not the suite: the run's summary then counts the cases under the reason.
describe('RabbitMQ over TLS (amqps://)', () => {
  let tlsNode: PrivateNode;
  let certificates: TestCertificates;
  let tls: { ca: string; cert: string; key: string };
  before(() => {
    if (!node) return;
    tlsNode = node;
    certificates = tlsNode.certificates as TestCertificates;
    const { ca, cert, key } = certificates;
    tls = { ca, cert, key };
  });

  it('the transport and a consumer work over TLS with a CA and a client certificate: every message handled once, each key in order', {
    skip,
  }, async () => {
    const application = testApplication('tls');
    const transport = await getRabbitTransport({ url: tlsNode.url, application, tls, partitions: 2 });
    try {
      await assertHandledOnceInKeyOrder(transport, { deadLetters: getInMemoryDeadLetterStore() });
    } finally {
      await transport.close();
    }
  });

  it('the redriver connects over TLS: it counts the group the transport declared and redelivers into it; without a client certificate it is refused', {
    skip,
  }, async () => {
    const application = testApplication('tls-redrive');
    const transport = await getRabbitTransport({ url: tlsNode.url, application, tls, partitions: 2 });
    const redriver = await getRabbitRedriver({ url: tlsNode.url, application, tls: { ...tls, ca: [tls.ca] } });
    try {
      await assertRedrivesToGroup(transport, redriver, 2);
    } finally {
      await redriver.close();
      await transport.close();
    }
    await refusesToOpen(
      getRabbitRedriver({ url: tlsNode.url, application, tls: { ca: tls.ca } }),
      refusedWith(/requires a client certificate: give tls\.cert and tls\.key/),
    );
  });

  it('a broker certificate Node does not trust fails at once, not retryable, saying to give its CA in tls.ca', {
    skip,
  }, async () => {
    const since = Date.now();
    await refusesToOpen(
      getRabbitTransport({ url: tlsNode.url, application: 'a', tls: { cert: tls.cert, key: tls.key } }),
      refusedWith(/the TLS handshake failed \(SELF_SIGNED_CERT_IN_CHAIN.*give the CA that signed it in tls\.ca/),
    );
    // No tls option at all: Node's CAs only.
    await refusesToOpen(
      getRabbitRedriver({ url: tlsNode.url, application: 'a' }),
      refusedWith(/certificate is not trusted/),
    );
    assert.ok(Date.now() - since < 5000, 'within the connect timeout');
  });

  it('a broker that verifies clients refuses a connection without a client certificate: not retryable, naming tls.cert and tls.key', {
    skip,
  }, async () => {
    await refusesToOpen(
      getRabbitTransport({ url: tlsNode.url, application: 'a', tls: { ca: tls.ca } }),
      refusedWith(/TLS handshake failed \(ERR_SSL_.*CERTIFICATE_REQUIRED.*give tls\.cert and tls\.key/),
    );
  });

  it("a client certificate from a CA the broker does not trust, or a key that is not the certificate's, is refused: not retryable, saying so", {
    skip,
  }, async () => {
    const dir = join(tlsNode.dir, 'stranger');
    mkdirSync(dir);
    const stranger = makeTestCertificates(dir);
    await refusesToOpen(
      getRabbitTransport({
        url: tlsNode.url,
        application: 'a',
        tls: { ca: tls.ca, cert: stranger.cert, key: stranger.key },
      }),
      refusedWith(
        /TLS handshake failed \(ERR_SSL_.*ALERT_UNKNOWN_CA.*the server refused the client certificate \(tls\.cert\)/,
      ),
    );
    // Our certificate with the other one's key: refused before anything is sent.
    await refusesToOpen(
      getRabbitTransport({
        url: tlsNode.url,
        application: 'a',
        tls: { ca: tls.ca, cert: tls.cert, key: stranger.key },
      }),
      refusedWith(/X509_KEY_VALUES_MISMATCH.*a tls\.key that is not tls\.cert's/),
    );
  });

  it('an encrypted client key opens with tls.passphrase; a wrong or missing one is refused at once, not retryable, naming tls.passphrase', {
    skip,
  }, async () => {
    const { encryptedKey, passphrase } = certificates;
    const transport = await getRabbitTransport({
      url: tlsNode.url,
      application: testApplication('tls-passphrase'),
      tls: { ...tls, key: encryptedKey, passphrase },
    });
    await transport.close();
    await refusesToOpen(
      getRabbitTransport({
        url: tlsNode.url,
        application: 'a',
        tls: { ...tls, key: encryptedKey, passphrase: 'wrong' },
      }),
      refusedWith(
        /TLS handshake failed \((ERR_OSSL_BAD_DECRYPT|ERR_OSSL_UNSUPPORTED).*wrong or missing tls\.passphrase/,
      ),
    );
    await refusesToOpen(
      getRabbitRedriver({ url: tlsNode.url, application: 'a', tls: { ...tls, key: encryptedKey } }),
      refusedWith(/(ERR_OSSL_BAD_DECRYPT|ERR_OSSL_UNSUPPORTED).*wrong or missing tls\.passphrase/),
    );
  });

  it('a certificate that does not name the host is refused, pointing at tls.servername; servername makes it pass', {
    skip,
  }, async () => {
    await refusesToOpen(
      getRabbitTransport({ url: tlsNode.url, application: 'a', tls: { ...tls, servername: 'rabbit.example' } }),
      refusedWith(/ERR_TLS_CERT_ALTNAME_INVALID.*does not name the host.*tls\.servername/),
    );
    const transport = await getRabbitTransport({
      url: tlsNode.url,
      application: testApplication('tls-servername'),
      tls: { ...tls, servername: 'localhost' },
    });
    await transport.close();
  });

  it('amqps:// to the plain AMQP listener fails at once, not retryable, saying the port does not speak TLS', {
    skip,
  }, async () => {
    await refusesToOpen(
      getRabbitTransport({ url: tlsNode.plainUrl.replace('amqp:', 'amqps:'), application: 'a', tls }),
      refusedWith(/ERR_SSL_WRONG_VERSION_NUMBER.*did not answer in TLS: amqps:\/\/ needs the broker's TLS listener/),
    );
  });

  it('amqp:// to the TLS listener fails at once, not retryable, saying the port answers in TLS: use amqps://', {
    skip,
  }, async () => {
    const plain = tlsNode.url.replace('amqps:', 'amqp:');
    await refusesToOpen(
      getRabbitTransport({ url: plain, application: 'a' }),
      refusedWith(/port \d+ answers in TLS, and the URL asks for plain text .*use amqps:\/\//),
    );
    await refusesToOpen(getRabbitRedriver({ url: plain, application: 'a' }), refusedWith(/answers in TLS/));
  });

  it('bad TLS settings are a ValidationError before anything connects', { skip }, async () => {
    // The amqp:// URL names the node's plain listener: a connection tried would open.
    const cases: [Record<string, unknown>, 'transport' | 'redriver', RegExp][] = [
      [{ url: tlsNode.plainUrl, tls }, 'transport', /getRabbitTransport\.tls.*not amqps:\/\//],
      [{ url: tlsNode.plainUrl, tls }, 'redriver', /getRabbitRedriver\.tls.*not amqps:\/\//],
      [
        { url: tlsNode.url, tls: { ...tls, rejectUnauthorized: false } },
        'transport',
        /has no field 'rejectUnauthorized'/,
      ],
      [
        { url: tlsNode.url, tls: { ca: '/etc/ssl/ca.pem' } },
        'transport',
        /ca must be PEM text \(the file's contents: read it with readFileSync\), got '\/etc\/ssl\/ca\.pem'/,
      ],
      [{ url: tlsNode.url, tls: { ca: tls.ca, cert: tls.cert } }, 'transport', /cert and key go together/],
      [{ url: tlsNode.url, tls: { ca: [] } }, 'transport', /ca must name at least one certificate/],
      [{ url: tlsNode.url, tls: { ca: tls.ca, passphrase: 'x' } }, 'transport', /passphrase goes with key/],
      [{ url: tlsNode.url, tls: { ...tls, servername: '' } }, 'transport', /servername must be a non-empty string/],
      [{ url: tlsNode.url, tls: 'yes' }, 'transport', /getRabbitTransport\.tls.*must be an object/],
      [
        { url: tlsNode.url, tls: { ...tls, ca: [tls.ca, 42] } },
        'redriver',
        /getRabbitRedriver\.tls.*ca\[1\] must be PEM text/,
      ],
    ];
    for (const [options, kind, pattern] of cases) {
      const opening =
        kind === 'transport'
          ? getRabbitTransport({ application: 'a', ...options } as never)
          : getRabbitRedriver({ application: 'a', ...options } as never);
      await refusesToOpen(opening, (error: Failure) => {
        assert.equal(error.code, 'VALIDATION', `${kind} ${JSON.stringify(Object.keys(options))}: ${error.message}`);
        assert.match(error.message, pattern);
        return true;
      });
    }
  });
});
