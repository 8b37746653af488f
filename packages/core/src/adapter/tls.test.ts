import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { createSecureContext } from 'node:tls';
import { tlsConnectOptions, tlsFailure, tlsHint, tlsOptionProblem } from './tls.ts';

const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('TLS settings of a broker connection', () => {
  it('tlsOptionProblem accepts PEM texts and a server name, and names every problem of a bad setting at once', () => {
    assert.equal(tlsOptionProblem({ ca: [pem, Buffer.from(pem)], cert: pem, key: pem, passphrase: 'p' }), undefined);
    assert.equal(tlsOptionProblem({ servername: 'broker.internal' }), undefined);
    assert.equal(
      tlsOptionProblem({ ca: '/etc/ssl/ca.pem', cert: pem, verify: false }),
      "has no field 'verify' (it takes ca, cert, key, passphrase, servername); ca must be PEM text (the file's contents: read it with readFileSync), got '/etc/ssl/ca.pem'; cert and key go together: give both or neither",
    );
    assert.match(String(tlsOptionProblem('yes')), /^must be an object/);
    assert.match(String(tlsOptionProblem({ servername: '' })), /servername must be a non-empty string/);
  });

  it("tlsFailure reads Node's handshake codes; anything else is no TLS failure", () => {
    const failure = (code: string) => tlsFailure(Object.assign(new Error(code), { code }));
    assert.equal(failure('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'untrusted-server');
    assert.equal(failure('SELF_SIGNED_CERT_IN_CHAIN'), 'untrusted-server');
    assert.equal(failure('ERR_TLS_CERT_ALTNAME_INVALID'), 'wrong-host');
    assert.equal(failure('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), 'client-certificate-required');
    assert.equal(failure('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE'), 'client-certificate-refused');
    assert.equal(failure('ERR_OSSL_BAD_DECRYPT'), 'client-key');
    assert.equal(failure('ECONNREFUSED'), undefined);
    assert.equal(tlsFailure(new Error('no code')), undefined);
    assert.match(tlsHint('untrusted-server'), /tls\.ca/);
  });

  it("an encrypted key opened with a wrong passphrase is 'client-key', whichever of OpenSSL's two errors it gets", () => {
    const { privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 1024,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'right' },
    });
    // Most wrong passphrases fail the decryption's padding check (bad decrypt); about 1 in 400 pass it by chance,
    // and the garbage is then no key OpenSSL can read (DECODER routines::unsupported).
    const seen = new Map<string, unknown>();
    for (let i = 0; i < 20_000 && seen.size < 2; i++) {
      try {
        createSecureContext({ key: privateKey, passphrase: `wrong-${i}` });
      } catch (error) {
        const code = String((error as { code?: unknown }).code);
        if (!seen.has(code)) seen.set(code, error);
      }
    }
    assert.deepEqual([...seen.keys()].sort(), ['ERR_OSSL_BAD_DECRYPT', 'ERR_OSSL_UNSUPPORTED']);
    for (const error of seen.values()) assert.equal(tlsFailure(error), 'client-key');
    assert.match(tlsHint('client-key'), /wrong or missing tls\.passphrase/);
    // An unreadable key, passphrase or not, is the key's fault too.
    assert.throws(
      () => createSecureContext({ key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }),
      (error) => tlsFailure(error) === 'client-key',
    );
  });

  it('tlsConnectOptions copies what was given and nothing else', () => {
    const list = [pem];
    const options = tlsConnectOptions({ ca: list, servername: 'localhost' });
    assert.deepEqual(options, { ca: [pem], servername: 'localhost' });
    assert.notEqual(options.ca, list);
    assert.deepEqual(tlsConnectOptions({}), {});
  });
});
