// The consumer stores on PostgreSQL, both on the tables of `postgres-consumer-tables.ts`: the inbox
// (a message applied once, with the handler's writes) and the dead letters.
export type { PostgresConsumerStoreOptions } from './postgres-consumer-tables.ts';
export { getPostgresDeadLetterStore, type PostgresDeadLetterStore } from './postgres-dead-letters.ts';
export { getPostgresInbox, type PostgresInbox, type PostgresInboxOptions } from './postgres-inbox.ts';
