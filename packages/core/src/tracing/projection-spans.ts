import type { RecordedEvent } from '../store/types.ts';
import { sharedCorrelation, traceInternal } from './messaging-spans.ts';
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
      const correlation = sharedCorrelation(batch);
      const first = batch[0] as RecordedEvent;
      const last = batch[batch.length - 1] as RecordedEvent;
      return {
        'factline.projection.name': projection,
        'messaging.batch.message_count': batch.length,
        'factline.position': last.position,
        'factline.position.first': first.position,
        'factline.attempt': attempt,
        ...(correlation === undefined ? {} : { 'factline.correlation_id': correlation }),
        ...(batch.length === 1 && typeof first.metadata.causationId === 'string'
          ? { 'factline.causation_id': first.metadata.causationId, 'factline.stream.id': first.streamId }
          : {}),
      };
    },
    work,
    () => producerLinks(batch),
  );
}
