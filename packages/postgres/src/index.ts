export { migratePostgres, type PostgresMigration } from './migrations.ts';
export type { AppendBatchStats } from './store/append-batcher.ts';
export {
  getPostgresEventStore,
  type PostgresEventStore,
  type PostgresEventStoreOptions,
} from './store/postgres-event-store.ts';
