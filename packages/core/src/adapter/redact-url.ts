/** A URL's userinfo: after `//`, up to the first `@` before any `/`, `?` or `#`. */
const USERINFO = /\/\/([^/?#@]*)@/g;
/** A query parameter whose value is a secret: its name holds `pass`, `token`, `secret` or `auth`. */
const SECRET_PARAMETER = /([?&])([^=&#]*(?:pass|token|secret|auth)[^=&#]*)=([^&#]*)/gi;

/**
 * A URL, or several joined by commas (a NATS server list), as messages and
 * logs may show it: a password in the userinfo becomes `***`, and so does a
 * userinfo without one, since there it is a token (`nats://<token>@host`);
 * so does the value of a query parameter whose name holds `pass`, `token`,
 * `secret` or `auth` (`?password=`, `?auth_token=`). The rest is kept, the
 * user name too. Text that is not a URL comes back unchanged.
 *
 * @example
 * redactUrl('amqp://app:s3cret@rabbit:5672/shop'); // 'amqp://app:***@rabbit:5672/shop'
 * redactUrl('nats://t0ken@n1:4222,nats://t0ken@n2:4222'); // 'nats://***@n1:4222,nats://***@n2:4222'
 * redactUrl('postgres://app@db/shop?password=s3cret'); // 'postgres://app@db/shop?password=***'
 */
export function redactUrl(url: string): string {
  return url
    .replace(USERINFO, (whole, userinfo: string) => {
      if (userinfo === '') return whole;
      const colon = userinfo.indexOf(':');
      return colon === -1 ? '//***@' : `//${userinfo.slice(0, colon)}:***@`;
    })
    .replace(SECRET_PARAMETER, '$1$2=***');
}
