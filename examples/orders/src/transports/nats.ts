import { getNatsTransport } from '@factline/nats';
import type { ExampleTransport } from '../transport-from-env.ts';

/**
 * The services on NATS JetStream: `FACTLINE_TRANSPORT=nats://127.0.0.1:4222`.
 * The stream and its consumers are named after `FACTLINE_NATS_APPLICATION` (default `factline-orders`).
 */
export async function open(url: string): Promise<ExampleTransport> {
  const application = process.env.FACTLINE_NATS_APPLICATION ?? 'factline-orders';
  const transport = await getNatsTransport({ url, application });
  return {
    transport,
    describe: `NATS JetStream (stream '${application}', durable consumers per service)`,
    close: () => transport.close(),
  };
}
