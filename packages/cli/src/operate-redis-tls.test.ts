import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMessage, type DeadLetter } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { type PrivateServer, startPrivateServer } from '../../redis/src/fixtures/private-server.ts';
import { testApplication } from '../../redis/src/fixtures/server.ts';
import { type BillingApplication, startBillingApplication } from './fixtures/redis-billing.ts';
import { runFactline } from './fixtures/run-factline.ts';

// `factline dlq` on an application whose Redis serves TLS only and verifies clients (a private server with
// certificates made for it): the FACTLINE_REDIS_TLS_* variables name the PEM files.
const started = await startPrivateServer({ tls: 'verify-clients' });
const skip = 'reason' in started ? started.reason : false;
after(async () => {
  if (!('reason' in started)) await started.stop();
});

describe('factline dlq on a Redis that serves TLS', { skip }, () => {
  let server: PrivateServer;
  let billing: BillingApplication;
  let variables: Record<string, string>;
  const application = testApplication('cli-tls');
  const poison = createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} });
  const factline = (env: Record<string, string | undefined>, ...args: string[]) =>
    runFactline([...args, '--db', server.url, '--app', application], { env });

  before(async () => {
    server = started as PrivateServer;
    const { ca, cert, key } = server.certificates as NonNullable<PrivateServer['certificates']>;
    variables = {
      FACTLINE_REDIS_TLS_CA: `${server.dir}/ca.pem`,
      FACTLINE_REDIS_TLS_CERT: `${server.dir}/client.pem`,
      FACTLINE_REDIS_TLS_KEY: `${server.dir}/client.key`,
    };
    billing = await startBillingApplication(
      application,
      { refused: [poison], accepted: [] },
      { url: server.url, tls: { ca, cert, key } },
    );
  });

  after(() => billing?.close());

  it('lists and redrives with the CA and the client certificate named by the variables', async () => {
    const listed = await factline(variables, 'dlq', 'ls', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    const records = JSON.parse(listed.stdout) as DeadLetter[];
    assert.deepEqual(
      records.map((r) => r.message.id),
      [poison.id],
    );
    billing.refused.delete(poison.id);
    const redriven = await factline(variables, 'dlq', 'redrive', (records[0] as DeadLetter).id, '--yes');
    assert.equal(redriven.code, 0, redriven.stderr);
    assert.equal(redriven.stdout.trim(), '1 dead letter redriven');
    await waitUntil(() => billing.handled.includes(poison.id), 'the redriven message handled by billing');
  });

  it('an encrypted client key opens with FACTLINE_REDIS_TLS_PASSPHRASE; a wrong one is one line naming it', async () => {
    const encrypted = { ...variables, FACTLINE_REDIS_TLS_KEY: `${server.dir}/client-encrypted.key` };
    const { passphrase } = server.certificates as NonNullable<PrivateServer['certificates']>;
    const listed = await factline({ ...encrypted, FACTLINE_REDIS_TLS_PASSPHRASE: passphrase }, 'dlq', 'ls', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    const wrong = await factline({ ...encrypted, FACTLINE_REDIS_TLS_PASSPHRASE: 'wrong' }, 'dlq', 'ls');
    assert.equal(wrong.code, 2);
    assert.match(
      wrong.stderr.trim(),
      /^factline: the TLS handshake with Redis at .* failed \((ERR_OSSL_BAD_DECRYPT|ERR_OSSL_UNSUPPORTED): .*\): check FACTLINE_REDIS_TLS_PASSPHRASE/,
    );
  });

  it('without the variables the handshake fails, exit 2, one line naming them', async () => {
    const untrusted = await factline({}, 'dlq', 'ls');
    assert.equal(untrusted.code, 2);
    assert.match(
      untrusted.stderr.trim(),
      /^factline: the TLS handshake with Redis at rediss:\/\/127\.0\.0\.1:\d+ failed \(SELF_SIGNED_CERT_IN_CHAIN: .*\): set FACTLINE_REDIS_TLS_CA to the file of the CA/,
    );
    const noClientCertificate = await factline({ FACTLINE_REDIS_TLS_CA: variables.FACTLINE_REDIS_TLS_CA }, 'dlq', 'ls');
    assert.equal(noClientCertificate.code, 2);
    assert.match(
      noClientCertificate.stderr,
      /CERTIFICATE_REQUIRED.*FACTLINE_REDIS_TLS_CERT and FACTLINE_REDIS_TLS_KEY/,
    );
  });

  it('FACTLINE_REDIS_TLS_SERVERNAME names the host to verify: one the certificate lacks is one line naming the variable', async () => {
    const wrongHost = await factline({ ...variables, FACTLINE_REDIS_TLS_SERVERNAME: 'redis.example' }, 'dlq', 'ls');
    assert.equal(wrongHost.code, 2);
    assert.match(
      wrongHost.stderr.trim(),
      /^factline: the TLS handshake with Redis at .* failed \(ERR_TLS_CERT_ALTNAME_INVALID: .*\): connect by a name the server's certificate carries, or set FACTLINE_REDIS_TLS_SERVERNAME to one$/,
    );
    const named = await factline({ ...variables, FACTLINE_REDIS_TLS_SERVERNAME: 'localhost' }, 'dlq', 'ls', '--json');
    assert.equal(named.code, 0, named.stderr);
  });

  it('variables that cannot be used are refused before connecting, exit 2', async () => {
    const missing = await factline({ ...variables, FACTLINE_REDIS_TLS_CA: `${server.dir}/no-such.pem` }, 'dlq', 'ls');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^factline: FACTLINE_REDIS_TLS_CA: cannot read '.*no-such\.pem': ENOENT/);
    const lonePassphrase = await factline(
      { FACTLINE_REDIS_TLS_CA: variables.FACTLINE_REDIS_TLS_CA, FACTLINE_REDIS_TLS_PASSPHRASE: 'x' },
      'dlq',
      'ls',
    );
    assert.equal(lonePassphrase.code, 2);
    assert.match(lonePassphrase.stderr, /FACTLINE_REDIS_TLS_PASSPHRASE goes with FACTLINE_REDIS_TLS_KEY/);
    const half = await factline({ ...variables, FACTLINE_REDIS_TLS_KEY: undefined }, 'dlq', 'ls');
    assert.equal(half.code, 2);
    assert.match(half.stderr, /FACTLINE_REDIS_TLS_CERT and FACTLINE_REDIS_TLS_KEY go together/);
    const plain = await runFactline(
      ['dlq', 'ls', '--db', server.url.replace('rediss:', 'redis:'), '--app', application],
      {
        env: variables,
      },
    );
    assert.equal(plain.code, 2);
    assert.match(
      plain.stderr,
      /FACTLINE_REDIS_TLS_CA, FACTLINE_REDIS_TLS_CERT, FACTLINE_REDIS_TLS_KEY set, but redis:\/\/.* is not a rediss:\/\/ URL/,
    );
  });
});
