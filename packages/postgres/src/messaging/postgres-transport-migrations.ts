import type { PostgresMigration } from '../migrations.ts';

/** The transport's tables (migration component `transport`): the groups of each topic, one row per message and group. */
export const transportMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: 'transport groups and per-group message queues',
    up: (s) => `
      -- The consumer groups of each topic: a publish copies its messages to
      -- every group registered at that moment.
      CREATE TABLE ${s}.transport_groups (
        topic text NOT NULL,
        group_name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, group_name)
      );

      -- One row per message and group, deleted when the group acks it.
      -- visible_at: not handed out before (delayed delivery, a release with a
      -- delay, or in flight until the visibility timeout). lease: set on every
      -- hand-out; a settle must name the current one.
      CREATE TABLE ${s}.transport_messages (
        seq bigserial NOT NULL,
        topic text NOT NULL,
        group_name text NOT NULL,
        id text NOT NULL,
        key text NOT NULL,
        message json NOT NULL,
        visible_at timestamptz NOT NULL,
        delivery_count integer NOT NULL DEFAULT 0,
        lease uuid,
        PRIMARY KEY (topic, group_name, seq),
        CONSTRAINT transport_messages_id_key UNIQUE (topic, group_name, id)
      );
      CREATE INDEX transport_messages_visible ON ${s}.transport_messages (topic, group_name, visible_at);
    `,
  },
  {
    version: 2,
    description: 'queue indexes the planner cannot misuse; hand-outs as HOT updates',
    up: (s) => `
      -- Only the primary key starts with (topic, group_name). With the other
      -- two indexes starting so as well, the planner, lacking statistics on a
      -- young or churning queue table, served acks and claims from them and
      -- filtered on seq: a scan of the whole group per statement (milliseconds
      -- per message with a few thousand waiting). The claim walks the primary
      -- key in seq order and skips rows not yet visible.
      DROP INDEX ${s}.transport_messages_visible;
      ALTER TABLE ${s}.transport_messages
        DROP CONSTRAINT transport_messages_id_key,
        ADD CONSTRAINT transport_messages_id_key UNIQUE (id, topic, group_name);
      -- No index covers visible_at, lease or delivery_count any more, so a
      -- hand-out, release or extension is a HOT update when its page has room.
      ALTER TABLE ${s}.transport_messages SET (fillfactor = 80);
    `,
  },
  {
    version: 3,
    description: 'queued messages by correlation id, for traceOperation',
    // On `message` only, which no hand-out changes: hand-outs stay HOT updates, and no
    // index but the primary key starts with (topic, group_name) for the planner to misuse.
    up: (s) => `
      CREATE INDEX transport_messages_correlation
        ON ${s}.transport_messages ((message->'metadata'->>'correlationId'));
    `,
  },
  {
    version: 4,
    description: 'a queued message’s creation time by the database’s clock, for the backlog age',
    // Its createdAt moved onto the database's clock: now() at the insert less the message's age
    // at publish by the publishing process's clock. NULL on rows written before (the backlog then
    // reads createdAt itself). No default, no index: adding it rewrites nothing and hand-outs stay HOT.
    up: (s) => `
      ALTER TABLE ${s}.transport_messages ADD COLUMN created_at timestamptz;
    `,
  },
];
