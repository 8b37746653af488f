import type { Migration } from '../migrations.ts';

/** The transport's tables: one row per (message, group) still to be settled, and the groups of each topic. */
export const transportMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'transport groups and messages',
    up: `
      CREATE TABLE factline_transport_groups (
        topic TEXT NOT NULL,
        group_name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (topic, group_name)
      ) WITHOUT ROWID;
      CREATE TABLE factline_transport_messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        group_name TEXT NOT NULL,
        message_id TEXT NOT NULL,
        message TEXT NOT NULL,
        key TEXT NOT NULL,
        visible_at INTEGER NOT NULL,
        delivery_count INTEGER NOT NULL DEFAULT 0,
        lease TEXT
      );
      CREATE INDEX factline_transport_messages_due
        ON factline_transport_messages (topic, group_name, visible_at);
    `,
  },
  {
    version: 2,
    description: 'the claim walks the queue in seq order',
    // With (topic, group_name, visible_at), a claim read every visible row of the group and sorted
    // them by seq to take the first few: 882 µs a claim with 12,000 waiting, against 99 µs now at
    // any depth. An index on (topic, group_name) holds the rowid (seq) last, so it walks the group in
    // seq order and stops after the claim's rows, stepping over those not yet visible. Hand-outs no
    // longer touch an index either.
    up: `
      DROP INDEX factline_transport_messages_due;
      CREATE INDEX factline_transport_messages_queue ON factline_transport_messages (topic, group_name);
    `,
  },
  {
    version: 3,
    description: 'queued messages by correlation id, for traceOperation',
    up: `
      CREATE INDEX factline_transport_messages_correlation
        ON factline_transport_messages (json_extract(message, '$.metadata.correlationId'));
    `,
  },
  {
    version: 4,
    description: 'the claim walks the keys of a group whose oldest rows are held back',
    // A claim by prefix reads every row ahead of the first it can hand out: with a hot key's
    // backlog of 100,000 rows behind its first row in flight, each claim of a competing consumer
    // read them all (175-188 ms holding the write lock) to find another key's row behind them.
    // Along (topic, group_name, key) and the rowid (seq), the claim reads each key's first rows.
    up: `
      CREATE INDEX IF NOT EXISTS factline_transport_messages_key
        ON factline_transport_messages (topic, group_name, key);
    `,
  },
];
