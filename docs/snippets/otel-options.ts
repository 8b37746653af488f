import { createEventBus, type Logger, type Transport } from '@factline/core';

/** The consumer options of docs/observability.md: the logger and the producer-span relation. */
export function subscribeWithTelemetry(transport: Transport, logger: Logger, ship: () => void) {
  // #region options
  const bus = createEventBus({ transport, topic: 'orders' });
  bus.subscribe('shipping', ['OrderPlaced'], ship, {
    logger, // pino or any { debug, info, warn, error }: what onError is told, and more
    producerSpan: 'parent', // the process span becomes the producer span's child (default 'link')
  });
  // #endregion
  return bus;
}
