import { createMessage } from '@factline/core';
import { getRabbitTransport } from '@factline/rabbitmq';

// Declares the exchange and the group's quorum queues on first use; every process of the app shares them.
const transport = await getRabbitTransport({
  url: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  application: process.env.FACTLINE_APPLICATION ?? 'shop',
});
await transport.declareSubscription('orders', 'billing');
await transport.publish('orders', [createMessage({ type: 'OrderPlaced', key: 'order-1', data: { total: 30 } })]);
const subscription = transport.subscribe('orders', 'billing');
const [delivery] = await subscription.receive(1, 5000, new AbortController().signal);
await delivery?.ack();
console.log(JSON.stringify({ type: delivery?.message.type, key: delivery?.message.key }));
await subscription.close();
await transport.close();
