import { isIP } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { TransportError } from '../errors/index.ts';
import { describeValue } from '../options/check-options.ts';
import { redactUrl } from './redact-url.ts';

// The TLS settings of a broker connection (Redis's `rediss://`, RabbitMQ's `amqps://`, NATS's `tls://`): their
// check, the options Node's `tls.connect` takes from them, and what a failed handshake means.

/**
 * The TLS settings of a connection, as PEM text (the files' contents, not
 * their paths). Without `ca` the server's certificate must chain to a CA Node
 * trusts: its bundled ones, plus those of `NODE_EXTRA_CA_CERTS`.
 */
export interface TlsOptions {
  /** The certificate authorities that sign the server's certificate, replacing Node's bundled ones for this connection. */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** The client's certificate, for a server that verifies clients. With `key`. */
  cert?: string | Buffer;
  /** The client certificate's private key. With `cert`. */
  key?: string | Buffer;
  /** The passphrase of an encrypted `key`. */
  passphrase?: string;
  /** The name the server's certificate must carry, when it is not the URL's host (an address, a tunnel). */
  servername?: string;
}

const TLS_FIELDS = new Set(['ca', 'cert', 'key', 'passphrase', 'servername']);
const TLS_FIELD_LIST = [...TLS_FIELDS].join(', ');

/** What is wrong with one PEM value, or undefined. */
function pemProblem(value: unknown, field: string): string | undefined {
  const text = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('latin1') : undefined;
  if (text === undefined) return `${field} must be PEM text (a string or a Buffer), got ${describeValue(value)}`;
  if (!text.includes('-----BEGIN ')) {
    return `${field} must be PEM text (the file's contents: read it with readFileSync), got ${
      typeof value === 'string' && value.length <= 80 ? `'${value}'` : 'text with no -----BEGIN line'
    }`;
  }
  return undefined;
}

/**
 * The `tls` option's check (for `checkOptions`): an object of PEM texts and a
 * server name, no other field; `cert` and `key` both or neither.
 */
export function tlsOptionProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Buffer.isBuffer(value)) {
    return `must be an object ({ ${TLS_FIELD_LIST} }), got ${describeValue(value)}`;
  }
  const given = value as Record<string, unknown>;
  const problems: string[] = [];
  const unknown = Object.keys(given).filter((name) => !TLS_FIELDS.has(name));
  if (unknown.length > 0)
    problems.push(`has no field ${unknown.map((name) => `'${name}'`).join(', ')} (it takes ${TLS_FIELD_LIST})`);
  if (given.ca !== undefined) {
    const cas = Array.isArray(given.ca) ? given.ca : [given.ca];
    if (cas.length === 0) problems.push('ca must name at least one certificate');
    cas.forEach((ca, i) => {
      const problem = pemProblem(ca, Array.isArray(given.ca) ? `ca[${i}]` : 'ca');
      if (problem) problems.push(problem);
    });
  }
  for (const field of ['cert', 'key'] as const) {
    if (given[field] === undefined) continue;
    const problem = pemProblem(given[field], field);
    if (problem) problems.push(problem);
  }
  if ((given.cert === undefined) !== (given.key === undefined))
    problems.push('cert and key go together: give both or neither');
  if (given.passphrase !== undefined && typeof given.passphrase !== 'string') {
    problems.push(`passphrase must be a string, got ${describeValue(given.passphrase)}`);
  }
  if (given.passphrase !== undefined && given.key === undefined) problems.push('passphrase goes with key');
  if (given.servername !== undefined && (typeof given.servername !== 'string' || given.servername === '')) {
    problems.push(`servername must be a non-empty string, got ${describeValue(given.servername)}`);
  }
  return problems.length > 0 ? problems.join('; ') : undefined;
}

/** Node's codes for a handshake that failed on the certificates or the protocol: settings to fix, not an outage. */
const TLS_REFUSAL = /CERT|^ERR_TLS_|^ERR_SSL_|^ERR_OSSL_|^UNABLE_TO_|^SELF_SIGNED|^DEPTH_ZERO/;

/**
 * Why a TLS handshake failed, from Node's error code, or undefined when
 * `error` is no handshake failure: `untrusted-server` (the server's
 * certificate does not chain to a trusted CA, or has expired), `wrong-host`
 * (it does not name the host), `client-certificate-required` (the server
 * verifies clients and got none), `client-certificate-refused` (the server
 * did not accept the one it got), `client-key` (the key cannot be used: a
 * wrong or missing passphrase, not the certificate's key, or unreadable), `handshake`
 * (anything else: a protocol both ends do not share, settings OpenSSL cannot
 * read).
 */
export type TlsFailure =
  | 'untrusted-server'
  | 'wrong-host'
  | 'client-certificate-required'
  | 'client-certificate-refused'
  | 'client-key'
  | 'handshake';

export function tlsFailure(error: unknown): TlsFailure | undefined {
  const code = String((error as { code?: unknown } | undefined)?.code ?? '');
  if (!TLS_REFUSAL.test(code)) return undefined;
  if (/CERTIFICATE_REQUIRED/.test(code)) return 'client-certificate-required';
  if (/^ERR_OSSL_(BAD_DECRYPT|X509_KEY_VALUES_MISMATCH)$/.test(code)) return 'client-key';
  // A key OpenSSL cannot read: also, about once in 400, an encrypted key given a wrong passphrase (the
  // decryption's padding check passes by chance and the result is not a key).
  if (code === 'ERR_OSSL_UNSUPPORTED' && /DECODER routines/.test(String((error as Error).message))) return 'client-key';
  if (/^ERR_OSSL_/.test(code)) return 'handshake';
  // An alert is the server's answer: what it refused is ours (a decrypt error: the client certificate's signature).
  if (/ALERT/.test(code))
    return /CERT|UNKNOWN_CA|DECRYPT_ERROR/.test(code) ? 'client-certificate-refused' : 'handshake';
  if (/ALTNAME/.test(code)) return 'wrong-host';
  if (/CERT|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO/.test(code)) return 'untrusted-server';
  return 'handshake';
}

const TLS_HINTS: Record<TlsFailure, string> = {
  'untrusted-server':
    "the server's certificate is not trusted: give the CA that signed it in tls.ca (or NODE_EXTRA_CA_CERTS)",
  'wrong-host': "the server's certificate does not name the host: connect by a name it carries, or give tls.servername",
  'client-certificate-required': 'the server requires a client certificate: give tls.cert and tls.key',
  'client-certificate-refused':
    'the server refused the client certificate (tls.cert): it must be signed by a CA the server trusts',
  'client-key':
    "the client key cannot be used: a wrong or missing tls.passphrase, a tls.key that is not tls.cert's, or one OpenSSL cannot read",
  handshake: 'check the TLS settings of both ends',
};

/** What to do about a handshake that failed as `failure`, for its error. */
export const tlsHint = (failure: TlsFailure): string => TLS_HINTS[failure];

/** The options of Node's `tls.connect` that `tls` gives (a copy: `ca` as a list when it is one). */
export function tlsConnectOptions(tls: TlsOptions): {
  ca?: (string | Buffer)[] | string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  passphrase?: string;
  servername?: string;
} {
  const { ca, cert, key, passphrase, servername } = tls;
  return {
    ...(ca !== undefined ? { ca: Array.isArray(ca) ? [...ca] : (ca as string | Buffer) } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(passphrase !== undefined ? { passphrase } : {}),
    ...(servername !== undefined ? { servername } : {}),
  };
}

/**
 * Whether the server at `host:port` answers in TLS, asked after a plain-text
 * connection to it was closed during its handshake (a TLS listener drops a
 * client that does not start with a TLS ClientHello, which the plain
 * client reports as a reset or a closed socket). One TLS connection,
 * trusting any certificate and sending nothing after the handshake, closed
 * at once: true when the handshake completes or the server answers it with
 * a TLS alert (a client certificate it requires); false for anything else
 * (no TLS record back, a refused connection, no answer within `waitMs`).
 * Never rejects.
 *
 * @example
 * if (url.startsWith('redis://') && (await answersInTls(host, port, 2000))) throw new TransportError('use rediss://');
 */
export function answersInTls(host: string, port: number, waitMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let socket: TLSSocket | undefined;
    let answered = false;
    const done = (answer: boolean) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      socket?.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), Math.max(0, waitMs));
    try {
      socket = connectTls({ host, port, rejectUnauthorized: false, ...(isIP(host) ? {} : { servername: host }) });
    } catch {
      done(false);
      return;
    }
    socket.once('secureConnect', () => done(true));
    // Every error is listened to (one after the answer would otherwise be thrown); the first one answers.
    socket.on('error', (error: { code?: unknown }) => done(/ALERT/.test(String(error.code ?? ''))));
    socket.once('close', () => done(false));
  });
}

/** Which plain-text URL `plainUrlToTlsPort` looks at, and how its failure reads. */
export interface PlainUrlSettings {
  /** The server, for the message: `'Redis'`, `'RabbitMQ'`. */
  server: string;
  /** The plain scheme (`'redis'`, `'amqp'`); the one with TLS is it with an `s` (`rediss`, `amqps`). */
  scheme: string;
  defaultPort: number;
  /** The longest wait for the port's answer (2 s at most is asked). */
  waitMs: number;
}

/**
 * For a plain-text URL whose connection was reset or closed during its
 * handshake, as a TLS port drops a client that does not speak TLS: when the
 * port answers in TLS (`answersInTls`, within 2 s at most), a
 * `TransportError`, not retryable, saying to use the TLS scheme; otherwise
 * undefined (an outage, to be told as one). Never rejects.
 *
 * @example
 * const refusal = await plainUrlToTlsPort(url, error, { server: 'Redis', scheme: 'redis', defaultPort: 6379, waitMs });
 * throw refusal ?? connectionError(error, url);
 */
export async function plainUrlToTlsPort(
  url: string,
  error: unknown,
  settings: PlainUrlSettings,
): Promise<TransportError | undefined> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const text = error instanceof Error ? error.message : String(error);
  if (parsed.protocol !== `${settings.scheme}:` || !/ECONNRESET|socket closed/i.test(text)) return undefined;
  const port = Number(parsed.port || settings.defaultPort);
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (!(await answersInTls(host, port, Math.min(2000, settings.waitMs)))) return undefined;
  return new TransportError(
    `${settings.server} at ${redactUrl(url)}: port ${port} answers in TLS, and the URL asks for plain text (${text}): use ${settings.scheme}s:// (with tls settings where the server's certificate needs them)`,
    { cause: error, retryable: false },
  );
}
