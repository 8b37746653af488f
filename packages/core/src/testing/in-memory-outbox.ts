import type { Message, MessageInput } from '../messaging/message.ts';
import { prepareMessages } from '../messaging/message.ts';
import type { Outbox, OutboxRow } from '../messaging/outbox-relay.ts';
import { checkOptions } from '../options/check-options.ts';
import { schemasOption } from '../options/core-options.ts';
import { encodeMessagesNow } from '../schema/encode-messages.ts';
import type { SchemaRegistry } from '../schema/registry.ts';

/**
 * An outbox in memory, for unit tests of work that enqueues messages and of
 * relays: `enqueue` stands for a committed transaction's rows, and the object
 * is the `Outbox` port `startOutboxRelay` reads.
 */
export interface InMemoryOutbox extends Outbox {
  /** Always reads. */
  read(limit: number, skipTopics: readonly string[]): Promise<OutboxRow[]>;
  enqueue(topic: string, messages: readonly (Message | MessageInput)[]): Message[];
  pending(): number;
}

export interface InMemoryOutboxOptions {
  /** Validate and stamp messages of defined types on enqueue, as the SQL outboxes do (synchronous validators only). */
  schemas?: SchemaRegistry;
}

/**
 * Creates an in-memory outbox.
 *
 * @example
 * const outbox = createInMemoryOutbox({ schemas });
 * outbox.enqueue('shipping', [{ type: 'ShipOrder', data: { orderId: 'o-1', express: false } }]);
 */
export function createInMemoryOutbox(options: InMemoryOutboxOptions = {}): InMemoryOutbox {
  checkOptions(options, { schemas: schemasOption }, 'createInMemoryOutbox');
  const rows: OutboxRow[] = [];
  const listeners = new Set<() => void>();
  let seq = 0;
  return {
    enqueue(topic, messages) {
      const built = options.schemas
        ? encodeMessagesNow(options.schemas, messages)
        : prepareMessages(messages, Date.now);
      for (const message of built) rows.push({ seq: ++seq, topic, message });
      queueMicrotask(() => {
        for (const listener of listeners) listener();
      });
      return built;
    },
    pending: () => rows.length,
    async read(limit, skipTopics) {
      return rows.filter((row) => !skipTopics.includes(row.topic)).slice(0, limit);
    },
    async remove(seqs) {
      const removed = new Set(seqs);
      for (let i = rows.length - 1; i >= 0; i--) if (removed.has((rows[i] as OutboxRow).seq)) rows.splice(i, 1);
    },
    onEnqueue(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}
