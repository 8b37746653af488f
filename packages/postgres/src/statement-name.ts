import { createHash } from 'node:crypto';

const names = new Map<string, string>();

/**
 * The name of a prepared statement: `factline:<parts joined by ':'>`, or,
 * when that would pass PostgreSQL's 63-byte identifier limit (the server
 * truncates longer names, so two statements could end up with one name),
 * `factline:` and a hash of it.
 */
export function statementName(...parts: string[]): string {
  const full = `factline:${parts.join(':')}`;
  let name = names.get(full);
  if (name === undefined) {
    name =
      Buffer.byteLength(full) <= 63 ? full : `factline:${createHash('sha256').update(full).digest('hex').slice(0, 40)}`;
    names.set(full, name);
  }
  return name;
}
