// The consumer stores on SQLite, both on the tables of `sqlite-consumer-tables.ts`: the inbox (a
// message applied once, with the handler's writes) and the dead letters.
export type { SqliteConsumerStoreOptions } from './sqlite-consumer-tables.ts';
export { getSqliteDeadLetterStore } from './sqlite-dead-letters.ts';
export { getSqliteInbox, type SqliteInboxOptions } from './sqlite-inbox.ts';
