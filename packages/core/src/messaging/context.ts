import { AsyncLocalStorage } from 'node:async_hooks';

/** What the runtime knows about the message being handled, for everything the handler does. */
export interface MessageContext {
  messageId: string;
  correlationId: string;
  /** The consumer handling it, when a consumer runtime set the context. */
  consumer?: string;
  traceparent?: string;
}

const storage = new AsyncLocalStorage<MessageContext>();

/**
 * Runs `handler` with `message` as the message being handled: every message
 * created and every event appended inside it (and in everything it awaits)
 * inherits the message's correlation id and gets the message's id as
 * causation id, without being passed anything. A message without a
 * correlation id starts a correlation of its own (its id).
 */
export function runInMessageContext<T>(
  message: { id: string; metadata?: { correlationId?: string; traceparent?: string } },
  handler: () => T,
  consumer?: string,
): T {
  const context: MessageContext = {
    messageId: message.id,
    correlationId: message.metadata?.correlationId ?? message.id,
    ...(consumer === undefined ? {} : { consumer }),
    ...(message.metadata?.traceparent === undefined ? {} : { traceparent: message.metadata.traceparent }),
  };
  return storage.run(context, handler);
}

/** The message being handled here, if any. */
export function currentMessageContext(): MessageContext | undefined {
  return storage.getStore();
}
