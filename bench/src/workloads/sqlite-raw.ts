/**
 * The raw better-sqlite3 baseline: the seed's `events` table (stream_id, type,
 * data, version, occurred_at) with a unique (stream_id, version) key, written
 * and read with plain statements at the same durability settings as Factline.
 */
import Sqlite, { type Database } from 'better-sqlite3';

export function openRaw(path: string, synchronous: 'FULL' | 'NORMAL' = 'FULL'): Database {
  const db = new Sqlite(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec(`CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    UNIQUE (stream_id, version)
  )`);
  return db;
}

export function rawInserter(db: Database) {
  const insert = db.prepare(
    'INSERT INTO events (id, stream_id, version, type, data, occurred_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const one = db.transaction((streamId: string, version: number, data: string) => {
    insert.run(crypto.randomUUID(), streamId, version, 'OrderPlaced', data, Date.now());
  });
  const many = db.transaction((streamId: string, fromVersion: number, count: number, data: string) => {
    for (let i = 0; i < count; i++) {
      insert.run(crypto.randomUUID(), streamId, fromVersion + i, 'ItemAdded', data, Date.now());
    }
  });
  return { one, many };
}
