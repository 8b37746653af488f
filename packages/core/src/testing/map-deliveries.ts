import type { Delivery, Transport } from '../messaging/transport.ts';

/**
 * The transport with every delivery it hands out passed through `map`
 * first: for tests that replace a delivery's `ack`, `release` or `extend`
 * (an ack that hangs, one that is slow) without touching the transport.
 *
 * @example
 * const slowAcks = mapDeliveries(transport, (d) => ({ ...d, ack: () => pause(50).then(() => d.ack()) }));
 */
export function mapDeliveries(transport: Transport, map: (delivery: Delivery) => Delivery): Transport {
  return {
    ...transport,
    subscribe(topic, group, options) {
      const subscription = transport.subscribe(topic, group, options);
      return {
        receive: async (max, waitMs, signal) => (await subscription.receive(max, waitMs, signal)).map(map),
        close: () => subscription.close(),
      };
    },
  };
}
