import { getRabbitTransport } from '@factline/rabbitmq';
import type { ExampleTransport } from '../transport-from-env.ts';

/**
 * The services on RabbitMQ: `FACTLINE_TRANSPORT=amqp://guest:guest@127.0.0.1:5672`.
 * Exchange and queues are named after `FACTLINE_AMQP_APPLICATION` (default `factline-orders`).
 */
export async function open(url: string): Promise<ExampleTransport> {
  const application = process.env.FACTLINE_AMQP_APPLICATION ?? 'factline-orders';
  const transport = await getRabbitTransport({ url, application });
  return {
    transport,
    describe: `RabbitMQ (exchange '${application}', quorum queues per service)`,
    close: () => transport.close(),
  };
}
