import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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

  it('tlsConnectOptions copies what was given and nothing else', () => {
    const list = [pem];
    const options = tlsConnectOptions({ ca: list, servername: 'localhost' });
    assert.deepEqual(options, { ca: [pem], servername: 'localhost' });
    assert.notEqual(options.ca, list);
    assert.deepEqual(tlsConnectOptions({}), {});
  });
});
