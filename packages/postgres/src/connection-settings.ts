import type pg from 'pg';

/**
 * The settings of a dedicated connection (a lease, a LISTEN): `base` (the
 * pool's, unless given) named `applicationName`, so it can be told apart in
 * `pg_stat_activity`. node-postgres lets a connection string's parameters win
 * over the other settings, so an `application_name` in the connection string
 * is taken out.
 */
export function dedicatedConnectionSettings(base: pg.ClientConfig, applicationName: string): pg.ClientConfig {
  const settings: pg.ClientConfig = { ...base };
  if (settings.connectionString) {
    try {
      const url = new URL(settings.connectionString);
      if (url.searchParams.has('application_name')) {
        url.searchParams.delete('application_name');
        settings.connectionString = url.toString();
      }
    } catch {
      // Not a URL: left as it is.
    }
  }
  return { connectionTimeoutMillis: 10_000, ...settings, application_name: applicationName, keepAlive: true };
}
