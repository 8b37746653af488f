export {
  getSqliteTransport,
  type SqliteTransport,
  type SqliteTransportOptions,
  transportMigrations,
} from './messaging/sqlite-transport.ts';
export { type Migration, migrate } from './migrations.ts';
export { getSqliteProjectionBackend, startSqliteProjections } from './projections/sqlite-projections.ts';
export {
  getSqliteEventStore,
  openSqliteDatabase,
  type SqliteEventStore,
  type SqliteEventStoreOptions,
} from './store/sqlite-event-store.ts';
export type { WriteQueueStats } from './store/write-queue.ts';
