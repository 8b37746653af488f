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
export function runInMessageContext<T>(message: ContextSource, handler: () => T, consumer?: string): T {
  return storage.run(contextOf(message, consumer), handler);
}

/** What a message context is made from. */
type ContextSource = { id: string; metadata?: { correlationId?: string; traceparent?: string } };

function contextOf(message: ContextSource, consumer: string | undefined): MessageContext {
  const metadata = message.metadata;
  const context: MessageContext = { messageId: message.id, correlationId: metadata?.correlationId ?? message.id };
  if (consumer !== undefined) context.consumer = consumer;
  const traceparent = metadata?.traceparent;
  if (traceparent !== undefined) context.traceparent = traceparent;
  return context;
}

/**
 * `handler(first, second)` in `message`'s context, as `runInMessageContext`
 * runs a handler: the consumer's form, which passes the handler its arguments
 * instead of a closure per call.
 */
export function callInMessageContext<A, B, T>(
  message: ContextSource,
  consumer: string,
  handler: (first: A, second: B) => T,
  first: A,
  second: B,
): T {
  return storage.run(contextOf(message, consumer), handler, first, second);
}

/** The message being handled here, if any. */
export function currentMessageContext(): MessageContext | undefined {
  return storage.getStore();
}
