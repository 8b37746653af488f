import { getRedisTransport } from '@factline/redis';
import type { ExampleTransport } from '../transport-from-env.ts';

/**
 * The services on Redis Streams: `FACTLINE_TRANSPORT=redis://127.0.0.1:6379`.
 * Keys start with `FACTLINE_REDIS_APPLICATION` (default `factline-orders`).
 */
export async function open(url: string): Promise<ExampleTransport> {
  const application = process.env.FACTLINE_REDIS_APPLICATION ?? 'factline-orders';
  const transport = await getRedisTransport({ url, application });
  return {
    transport,
    describe: `Redis Streams (keys '${application}:*', a consumer group per service)`,
    close: () => transport.close(),
  };
}
