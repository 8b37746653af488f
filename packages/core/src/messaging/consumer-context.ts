import { isPromiseLike } from './consumer-ports.ts';
import { callInMessageContext } from './context.ts';
import type { Message } from './message.ts';

/** One try of the handler, as the inbox runs it, and whether the handler itself threw. */
export interface HandlerCall<Tx> {
  /** Runs the handler with `tx` (the inbox's transaction, or `undefined`). */
  run(tx: Tx): unknown;
  /** The handler's own failure, told apart from the inbox's around it. */
  readonly threw: boolean;
}

/** One try: its `run` is a method (no closure per try); the inbox binds it where it hands it on. */
class Call<Tx> implements HandlerCall<Tx> {
  threw = false;

  constructor(
    private readonly consumer: string,
    private readonly handler: (message: Message, tx: Tx) => unknown,
    private readonly message: Message,
  ) {}

  run(tx: Tx): unknown {
    let result: unknown;
    try {
      result = callInMessageContext(this.message, this.consumer, this.handler, this.message, tx);
    } catch (error) {
      this.threw = true;
      throw error;
    }
    if (!isPromiseLike(result)) return result;
    return Promise.resolve(result).catch((error: unknown) => {
      this.threw = true;
      throw error;
    });
  }
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
  return new Call(consumer, handler, message);
}
