import type { RecordedEvent } from '../store/types.ts';
import { sharedIdAttributes, traceInternal } from './messaging-spans.ts';
import { producerLinks } from './trace-context.ts';

/**
 * A `projection {name}` span around one batch's commit (the handler and the
 * checkpoint), linked to each event's producer (its append span); the
 * event relay's `send` span runs inside it.
 */
export function traceProjectionBatch<T>(
  projection: string,
  batch: readonly RecordedEvent[],
  attempt: number,
  work: () => Promise<T>,
): Promise<T> {
  return traceInternal(
    `projection ${projection}`,
    () => {
      const first = batch[0] as RecordedEvent;
      const last = batch[batch.length - 1] as RecordedEvent;
      return {
        'factline.projection.name': projection,
        'messaging.batch.message_count': batch.length,
        'factline.position': last.position,
        'factline.position.first': first.position,
        'factline.attempt': attempt,
        ...sharedIdAttributes(batch),
        ...(batch.length === 1 ? { 'factline.stream.id': first.streamId } : {}),
      };
    },
    work,
    () => producerLinks(batch),
  );
}
