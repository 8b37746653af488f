import { readFileSync } from 'node:fs';
import { type TlsFailure, tlsFailure } from '@factline/core/adapter';
import { CliError } from '../cli-error.ts';
import { redactUrl } from './database-url.ts';

/** The brokers whose TLS settings the environment names: their variables' prefix and the URLs that ask for TLS. */
const SYSTEMS = {
  redis: { name: 'Redis', prefix: 'FACTLINE_REDIS_TLS_', scheme: 'rediss://', a: 'a' },
  amqp: { name: 'RabbitMQ', prefix: 'FACTLINE_AMQP_TLS_', scheme: 'amqps://', a: 'an' },
  nats: { name: 'NATS', prefix: 'FACTLINE_NATS_TLS_', scheme: 'tls://', a: 'a' },
} as const;

export type TlsSystem = keyof typeof SYSTEMS;

/** TLS settings read from the environment: the files' PEM texts (a `TlsOptions`). */
export type EnvironmentTls = { ca?: string; cert?: string; key?: string; passphrase?: string; servername?: string };

/** The variables of `system`: the PEM files of the CA, the client certificate and key; the passphrase; the name. */
export function tlsVariables(system: TlsSystem) {
  const { prefix } = SYSTEMS[system];
  return {
    ca: `${prefix}CA`,
    cert: `${prefix}CERT`,
    key: `${prefix}KEY`,
    passphrase: `${prefix}PASSPHRASE`,
    servername: `${prefix}SERVERNAME`,
  } as const;
}

/** Whether every server `url` names asks for TLS (a NATS URL may name several, comma-separated). */
const asksForTls = (url: string, system: TlsSystem) =>
  url.split(',').every((server) => server.trim().toLowerCase().startsWith(SYSTEMS[system].scheme));

/**
 * The TLS settings the environment names for `url` on `system`: each of the
 * CA, certificate and key variables set (non-empty) is a PEM file read now,
 * the passphrase variable the key's passphrase, the server name variable the
 * name to verify the server's certificate against. None set: Node's trusted
 * CAs (and `NODE_EXTRA_CA_CERTS`), no client certificate. Set with a URL that
 * does not ask for TLS, naming a file that cannot be read, or half of a pair,
 * is a `CliError`.
 *
 * @example
 * const tls = tlsFromEnvironment('amqps://broker:5671', 'amqp'); // FACTLINE_AMQP_TLS_CA=ca.pem … → { ca: '-----BEGIN …' }
 */
export function tlsFromEnvironment(url: string, system: TlsSystem, env = process.env): EnvironmentTls | undefined {
  const variables = tlsVariables(system);
  const files = (['ca', 'cert', 'key'] as const).filter((field) => env[variables[field]]);
  const passphrase = env[variables.passphrase] || undefined;
  const servername = env[variables.servername] || undefined;
  const set = [
    ...files.map((field) => variables[field]),
    ...(passphrase ? [variables.passphrase] : []),
    ...(servername ? [variables.servername] : []),
  ];
  if (set.length === 0) return undefined;
  if (!asksForTls(url, system)) {
    throw new CliError(
      `${set.join(', ')} set, but ${redactUrl(url)} is not ${SYSTEMS[system].a} ${SYSTEMS[system].scheme} URL`,
    );
  }
  const tls: EnvironmentTls = {};
  for (const field of files) {
    const path = env[variables[field]] as string;
    try {
      tls[field] = readFileSync(path, 'utf8');
    } catch (error) {
      throw new CliError(`${variables[field]}: cannot read '${path}': ${(error as Error).message}`);
    }
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new CliError(`${variables.cert} and ${variables.key} go together: set both or neither`);
  }
  if (passphrase !== undefined) {
    if (tls.key === undefined) throw new CliError(`${variables.passphrase} goes with ${variables.key}`);
    tls.passphrase = passphrase;
  }
  if (servername !== undefined) tls.servername = servername;
  return tls;
}

/** What to set about a handshake that failed as `failure`, in the variables of `system`. */
function tlsFix(failure: TlsFailure, system: TlsSystem): string {
  const variables = tlsVariables(system);
  if (failure === 'client-certificate-required' || failure === 'client-certificate-refused')
    return `set ${variables.cert} and ${variables.key} to a client certificate the server accepts`;
  if (failure === 'client-key')
    return `check ${variables.passphrase} (the key's passphrase) and that ${variables.key} is the key of ${variables.cert}`;
  if (failure === 'wrong-host')
    return `connect by a name the server's certificate carries, or set ${variables.servername} to one`;
  if (failure === 'handshake')
    return `check the TLS settings of both ends (${SYSTEMS[system].scheme} needs the server's TLS port)`;
  return `set ${variables.ca} to the file of the CA that signs its certificate`;
}

/**
 * A failed TLS handshake with `system` at `url` as one line naming its cause
 * and the variables that fix it, or undefined when `error` (or its cause) is
 * no handshake failure.
 */
export function tlsHandshakeError(url: string, system: TlsSystem, error: unknown): CliError | undefined {
  const tlsError = [error, (error as { cause?: unknown } | undefined)?.cause].find((e) => tlsFailure(e) !== undefined);
  const failure = tlsFailure(tlsError);
  if (!failure) return undefined;
  const text = tlsError instanceof Error ? tlsError.message.trim() : String(tlsError);
  const code = (tlsError as { code: string }).code;
  return new CliError(
    `the TLS handshake with ${SYSTEMS[system].name} at ${redactUrl(url)} failed (${code}: ${text}): ${tlsFix(failure, system)}`,
  );
}
