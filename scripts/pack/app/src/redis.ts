import { createConsumer, createMessage, type Message } from '@factline/core';
import { getRedisInbox, getRedisTransport } from '@factline/redis';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const application = process.env.FACTLINE_APPLICATION ?? 'shop';
// Partition streams and consumer groups are created on first use; every process of the app shares them.
const transport = await getRedisTransport({ url, application });
// The idempotent consumer: a `processed:<id>` mark per message, set with its claim, kept 24 hours.
const inbox = await getRedisInbox({ url, application });

let handle: (message: Message) => void = () => {};
const handled = new Promise<Message>((resolve) => {
  handle = resolve;
});
const consumer = createConsumer({ name: 'billing', topic: 'orders', transport, inbox, handler: (m) => handle(m) });
await consumer.start();
await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'order-1', data: { total: 30 } })]);
const message = await handled;
await consumer.stop();
console.log(JSON.stringify({ type: message.type, key: message.key, handled: consumer.stats().handled }));
await inbox.close();
await transport.close();
