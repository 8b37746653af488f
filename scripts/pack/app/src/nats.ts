import { createMessage } from '@factline/core';
import { getNatsTransport } from '@factline/nats';

// Creates the application's stream and the group's durable consumers on first use; every process shares them.
const transport = await getNatsTransport({
  url: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  application: process.env.FACTLINE_APPLICATION ?? 'shop',
});
await transport.declareSubscription('orders', 'billing');
// Resolves once the stream acknowledged it; a retried publish of the same message is stored once.
await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'order-1', data: { total: 30 } })]);
const subscription = transport.subscribe('orders', 'billing');
const [delivery] = await subscription.receive(1, 5000, new AbortController().signal);
await delivery?.ack();
console.log(JSON.stringify({ type: delivery?.message.type, key: delivery?.message.key }));
await subscription.close();
await transport.close();
