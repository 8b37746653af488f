import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';

/** The form field and header carrying the CSRF token of a state-changing request. */
export const csrfField = '_csrf';
/** The confirmation form's field naming what the page showed: the change applies only to that. */
export const seenField = '_seen';
const tokenCookie = 'factline_ui_token';

/** Scripts and styles only from the dashboard itself: no inline script runs, whatever a page shows. */
const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const sameText = (a: string, b: string) => {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
};

/** A fresh random secret (per server): the CSRF token its forms carry. */
export const newCsrfToken = () => randomBytes(24).toString('base64url');

const loopbackNames = ['127.0.0.1', 'localhost', '[::1]'];

/** Whether `host` (a `--host` value) only listens on this machine. */
export const isLoopbackHost = (host: string) =>
  host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);

/**
 * The `Host` headers a request may carry for a server bound to `host:port`:
 * a loopback server answers only loopback names (a DNS-rebound name is
 * refused); a wildcard bind (`0.0.0.0`, `::`) cannot know its names, and
 * relies on its token.
 */
export function allowedHosts(host: string, port: number): Set<string> | undefined {
  if (host === '0.0.0.0' || host === '::') return undefined;
  const names = isLoopbackHost(host) ? [...loopbackNames, host.includes(':') ? `[${host}]` : host] : [host];
  // On port 80 a browser sends the bare name.
  return new Set(
    names.flatMap((name) => (port === 80 ? [name, `${name}:80`] : [`${name}:${port}`])).map((h) => h.toLowerCase()),
  );
}

/** Security headers on every answer. */
export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  c.res.headers.set('Content-Security-Policy', contentSecurityPolicy);
  c.res.headers.set('X-Content-Type-Options', 'nosniff');
  c.res.headers.set('Referrer-Policy', 'same-origin');
  c.res.headers.set('X-Frame-Options', 'DENY');
  c.res.headers.set('Cache-Control', 'no-store');
};

/** Refuses a request whose `Host` is not one the server was bound to (DNS rebinding). */
export function hostCheck(allowed: () => Set<string> | undefined): MiddlewareHandler {
  return async (c, next) => {
    const hosts = allowed();
    const host = (c.req.header('host') ?? '').toLowerCase();
    if (hosts && !hosts.has(host)) return c.text(`refused: unexpected Host header '${host}'`, 403);
    await next();
  };
}

/**
 * With a token, every request must carry it: the `Authorization: Bearer`
 * header, or the cookie set once from `?token=` (which then redirects to the
 * same address without it, so the token leaves the address bar).
 */
export function tokenCheck(token: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (token === undefined) return next();
    const fromQuery = c.req.query('token');
    if (fromQuery !== undefined && sameText(fromQuery, token)) {
      setCookie(c, tokenCookie, token, { httpOnly: true, sameSite: 'Strict', path: '/' });
      const url = new URL(c.req.url);
      url.searchParams.delete('token');
      return c.redirect(`${url.pathname}${url.search}`, 303);
    }
    const bearer = c.req.header('authorization')?.replace(/^Bearer /i, '');
    const given = bearer ?? getCookie(c, tokenCookie);
    if (given === undefined || !sameText(given, token)) {
      return c.text('refused: this dashboard needs its token (open it with ?token=...)', 401);
    }
    await next();
  };
}

/** The origin a POST came from: its `Origin` header, else its `Referer`'s origin. */
function originOf(c: Context): string | undefined {
  const origin = c.req.header('origin');
  if (origin !== undefined && origin !== 'null') return origin;
  const referer = c.req.header('referer');
  if (referer === undefined) return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return undefined;
  }
}

/**
 * A state-changing request (anything but GET and HEAD) must come from a page
 * of this server (its `Origin` is this `Host`) AND carry the server's CSRF
 * token in the form field or the `x-csrf-token` header; otherwise 403.
 */
export function csrfCheck(csrfToken: string): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    const origin = originOf(c);
    if (origin === undefined || origin.toLowerCase() !== `http://${(c.req.header('host') ?? '').toLowerCase()}`) {
      return c.text('refused: cross-origin request', 403);
    }
    let given = c.req.header('x-csrf-token');
    if (given === undefined) {
      const type = c.req.header('content-type') ?? '';
      if (type.startsWith('application/x-www-form-urlencoded') || type.startsWith('multipart/form-data')) {
        const field = (await c.req.parseBody())[csrfField];
        if (typeof field === 'string') given = field;
      }
    }
    if (given === undefined || !sameText(given, csrfToken)) return c.text('refused: missing or wrong CSRF token', 403);
    await next();
  };
}
