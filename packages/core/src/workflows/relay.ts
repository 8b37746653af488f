import { ValidationError } from '../errors/index.ts';
import type { Message } from '../messaging/message.ts';
import type { Transport } from '../messaging/transport.ts';
import type { Projection } from '../projections/types.ts';
import { SCHEMA_VERSION_HEADER } from '../schema/decode.ts';
import type { RecordedEvent } from '../store/types.ts';
import { systemOf, traceSend } from '../tracing/messaging-spans.ts';
import { type SentRecordData, workflowEventTypes } from './records.ts';

export interface WorkflowRelayOptions {
  /** Names the relay's checkpoint. */
  name: string;
  transport: Transport;
  /** Where a sent message goes unless its output names a topic. */
  topic: string;
}

/** The message a recorded `send` output travels as: its id is the record's (derived) id. */
export function messageFromSent(event: RecordedEvent): Message {
  const { message } = event.data as SentRecordData;
  const headers: Record<string, string> = { 'factline-workflow-stream': event.streamId };
  // Recorded at its type's version in the store's registry: a decoding consumer upcasts it from there.
  if (message.schema?.kind === 'message') headers[SCHEMA_VERSION_HEADER] = String(message.schema.version);
  return {
    id: event.id,
    type: message.type,
    data: message.data,
    metadata: { ...event.metadata },
    key: message.key ?? event.streamId,
    headers,
    createdAt: event.recordedAt,
  };
}

/**
 * The store as the workflows' outbox: a projection with external effects that
 * publishes every message an instance recorded as sent, in log order, at
 * least once (a crash before its checkpoint publishes the batch again with the
 * same message ids; consumers' inboxes drop the repeats). Run it with the
 * adapter's projection runner, like `defineEventRelay`.
 *
 * @example
 * startSqliteProjections(store, [defineWorkflowRelay({ name: 'workflow-relay', transport, topic: 'commands' })]);
 */
export function defineWorkflowRelay(options: WorkflowRelayOptions): Projection<unknown> {
  if (
    typeof options?.name !== 'string' ||
    typeof options.transport?.publish !== 'function' ||
    typeof options.topic !== 'string' ||
    options.topic.length === 0
  ) {
    throw new ValidationError({ path: 'defineWorkflowRelay', message: 'needs a name, a transport and a topic' });
  }
  const { transport, topic } = options;
  return {
    name: options.name,
    handles: [workflowEventTypes.sent],
    effects: 'external',
    handle: async (events) => {
      let start = 0;
      while (start < events.length) {
        const runTopic = topicOf(events[start] as RecordedEvent, topic);
        let end = start + 1;
        while (end < events.length && topicOf(events[end] as RecordedEvent, topic) === runTopic) end++;
        const messages = events.slice(start, end).map((event) => messageFromSent(event as RecordedEvent));
        await traceSend(systemOf(transport), runTopic, messages, () =>
          transport.publish(runTopic, messages, { requireSubscription: true }),
        );
        start = end;
      }
    },
  };
}

const topicOf = (event: RecordedEvent, fallback: string) => (event.data as SentRecordData).topic ?? fallback;
