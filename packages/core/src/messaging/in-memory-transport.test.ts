import { testTransportConformance } from '../testing/transport-conformance.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';

testTransportConformance({ name: 'in-memory', createTransport: () => getInMemoryTransport() });
