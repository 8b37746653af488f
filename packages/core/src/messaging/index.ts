export {
  type Consumer,
  type ConsumerErrorContext,
  type ConsumerErrorStage,
  type ConsumerOptions,
  type ConsumerState,
  type ConsumerStats,
  createConsumer,
} from './consumer.ts';
export type { ConsumerDeadLetters } from './consumer-dead-letters.ts';
export { type RetryShorthand, retryPolicyFromShorthand } from './consumer-options.ts';
export {
  type DeadLetter,
  type DeadLetterError,
  type DeadLetterFilter,
  type DeadLetterStore,
  type DefaultRetryPolicyOptions,
  defaultRetryPolicy,
  getInMemoryDeadLetterStore,
  getInMemoryInbox,
  type Inbox,
  isNonRetryable,
  type RetryDecision,
  type RetryPolicy,
} from './consumer-ports.ts';
export { currentMessageContext, type MessageContext, runInMessageContext } from './context.ts';
export {
  createEventBus,
  type EventBus,
  type EventBusOptions,
  type EventHandler,
  type PublishOptions,
  type SubscriberOptions,
} from './event-bus.ts';
export { defineEventRelay, type EventRelayOptions } from './event-relay.ts';
export { getInMemoryTransport, type InMemoryTransportOptions } from './in-memory-transport.ts';
export {
  createMessage,
  inheritCorrelation,
  type Message,
  type MessageInput,
  type MessageMetadata,
  type MessageOf,
  messageFromEvent,
} from './message.ts';
export type { OutboxRelayStats } from './relay-status.ts';
export type {
  Delivery,
  SubscribeOptions,
  Subscription,
  Transport,
  TransportBacklog,
  TransportCapabilities,
  TransportPublishOptions,
} from './transport.ts';
