import { type TlsFailure, type TlsOptions, tlsConnectOptions, tlsFailure } from '@factline/core/adapter';

// The TLS settings of a `rediss://` connection: the generic check and failure reading live on
// `@factline/core/adapter` (tls.ts); the names here are the Redis package's.

/** The TLS settings of a `rediss://` connection (`TlsOptions`): `cert` and `key` for a server with `tls-auth-clients yes`, its default. */
export type RedisTlsOptions = TlsOptions;

/** Why a TLS handshake with Redis failed (`TlsFailure`). */
export type RedisTlsFailure = TlsFailure;

/** `tlsFailure` under the Redis package's name. */
export const redisTlsFailure = (error: unknown): RedisTlsFailure | undefined => tlsFailure(error);

/** The socket options of `tls` (the URL's `rediss://` turns TLS on). */
export function tlsSocket(tls: RedisTlsOptions | undefined): ReturnType<typeof tlsConnectOptions> & { tls?: true } {
  if (!tls) return {};
  return { tls: true, ...tlsConnectOptions(tls) };
}
