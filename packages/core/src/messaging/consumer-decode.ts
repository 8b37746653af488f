import { decodeMessage } from '../schema/decode.ts';
import type { SchemaRegistry } from '../schema/registry.ts';
import { isThenable } from '../schema/validate.ts';
import type { Message } from './message.ts';

/**
 * The last step before the handler, with a registry (`schemas`): the message
 * is decoded to its type's current version (`decodeMessage`, the decoding
 * every read path shares) and the handler gets the upcast message. It runs
 * inside the handler's try, so a message that cannot be decoded (an
 * upcaster that throws, a version newer than this release knows) is a
 * handler failure: reported, retried by the policy, then dead-lettered as it
 * was received; a redriven dead letter comes back through it, upcast again.
 *
 * @example
 * const handler = schemas ? decodingHandler(schemas, options.handler) : options.handler;
 */
export function decodingHandler<Tx>(
  registry: SchemaRegistry,
  handler: (message: Message, tx: Tx) => unknown,
): (message: Message, tx: Tx) => unknown {
  return (message, tx) => {
    const decoded = decodeMessage(registry, message);
    // Synchronous unless a read validator is asynchronous: a SQL inbox's synchronous transaction keeps working.
    return isThenable(decoded) ? Promise.resolve(decoded).then((m) => handler(m, tx)) : handler(decoded, tx);
  };
}
