import { testConsumerConformance } from '../testing/consumer-conformance.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';

testConsumerConformance({
  name: 'in-memory transport, in-memory inbox and dead letters',
  async createEnvironment() {
    const transport = getInMemoryTransport();
    const effects = new Map<string, string[]>();
    return {
      transport,
      writeEffect(_tx, consumer, value) {
        effects.set(consumer, [...(effects.get(consumer) ?? []), value]);
      },
      effects: async (consumer) => [...(effects.get(consumer) ?? [])],
      close: () => transport.close(),
    };
  },
});
