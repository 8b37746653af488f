import { isPromiseLike } from './consumer-ports.ts';
import { runInMessageContext } from './context.ts';
import type { Message } from './message.ts';

/** One try of the handler, as the inbox runs it, and whether the handler itself threw. */
export interface HandlerCall<Tx> {
  /** Runs the handler with `tx` (the inbox's transaction, or `undefined`). */
  run(tx: Tx): unknown;
  /** The handler's own failure, told apart from the inbox's around it. */
  readonly threw: boolean;
}

/**
 * Step 1 of the pipeline, the message's context: the handler runs with the
 * message as the message being handled, so every message it creates and
 * every event it appends inherits the correlation id and takes the message's
 * id as causation id. One call per try.
 */
export function handlerCall<Tx>(
  consumer: string,
  handler: (message: Message, tx: Tx) => unknown,
  message: Message,
): HandlerCall<Tx> {
  const call = {
    threw: false,
    run(tx: Tx) {
      try {
        const result = runInMessageContext(message, () => handler(message, tx), consumer);
        if (!isPromiseLike(result)) return result;
        return Promise.resolve(result).catch((error: unknown) => {
          call.threw = true;
          throw error;
        });
      } catch (error) {
        call.threw = true;
        throw error;
      }
    },
  };
  return call;
}
