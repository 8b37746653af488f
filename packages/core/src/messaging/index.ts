export { currentMessageContext, type MessageContext, runInMessageContext } from './context.ts';
export {
  createMessage,
  inheritCorrelation,
  type Message,
  type MessageInput,
  type MessageMetadata,
  messageFromEvent,
} from './message.ts';
