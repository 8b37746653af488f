import { readFileSync } from 'node:fs';
import { type Consumer, createConsumer } from '@factline/core';
import { getRedisInbox, getRedisTransport, type RedisInbox, type RedisTransport } from '@factline/redis';
import { createClient } from 'redis';

/** A billing consumer on Redis alone: Streams carry the orders, the Redis inbox keeps the marks. */
export async function redisBilling(
  url: string,
  application: string,
): Promise<{ transport: RedisTransport; inbox: RedisInbox; consumer: Consumer; stop(): Promise<void> }> {
  const invoices = createClient({ url });
  await invoices.connect();
  // #region transport
  const transport = await getRedisTransport({
    url, // redis://[user:password@]host:6379[/db]
    application, // prefixes every key: <application>:stream:<topic>:<p>, …
    partitions: 4, // streams per topic; a key always lands in the same one, read by one process at a time
    leaseMs: 5000, // a process that died hands its partitions on after this
  });
  const inbox = await getRedisInbox({ url, application, retentionMs: 86_400_000 });
  const consumer = createConsumer({
    name: 'billing',
    topic: 'orders',
    transport,
    inbox, // claim, handler, then the processed mark (24 h)
    maxRetries: 3,
    retryDelay: [1000, 5000, 30_000],
    handler: async (message) => {
      const { orderId, total } = message.data as { orderId: string; total: number };
      await invoices.hSet(`${application}:invoices`, orderId, String(total));
    },
  });
  await consumer.start(); // creates the group on every stream: from now on it gets every message
  // #endregion
  return {
    transport,
    inbox,
    consumer,
    async stop() {
      await consumer.stop();
      await transport.close();
      await inbox.close();
      await invoices.close();
    },
  };
}

/** The transport and the inbox of `application` on a Redis that serves TLS and verifies clients. */
export async function redisOverTls(
  url: string,
  application: string,
  files: { ca: string; cert: string; key: string },
): Promise<{ transport: RedisTransport; inbox: RedisInbox }> {
  // #region tls
  const tls = {
    ca: readFileSync(files.ca), // the CA that signs the server's certificate (PEM)
    cert: readFileSync(files.cert), // the client certificate, where the server verifies clients
    key: readFileSync(files.key),
  };
  const transport = await getRedisTransport({ url, application, tls }); // url: rediss://host:6380
  const inbox = await getRedisInbox({ url, application, tls });
  // #endregion
  return { transport, inbox };
}
