import type { TransportConformanceCase } from './context.ts';
import { delayCases } from './delays.ts';
import { deliveryCases } from './delivery.ts';
import { groupCases } from './groups.ts';
import { keyOrderCases } from './key-order.ts';
import { lifecycleCases } from './lifecycle.ts';
import { subscriptionCases } from './subscriptions.ts';
import { validationCases } from './validation.ts';
import { visibilityCases } from './visibility.ts';

export {
  type ReceiveOptions,
  receiveAtLeast,
  type TransportCaseContext,
  type TransportConformanceCase,
  type TransportRequirement,
  transportSkipReasons,
} from './context.ts';

/** Every case of the transport contract, grouped by topic. */
export const transportConformanceCases: Readonly<Record<string, readonly TransportConformanceCase[]>> = {
  validation: validationCases,
  delivery: deliveryCases,
  'groups: fan-out, competing consumers, redelivery': groupCases,
  'visibility: ack, release, extend': visibilityCases,
  delays: delayCases,
  'per-key order': keyOrderCases,
  subscriptions: subscriptionCases,
  'lifecycle and restarts': lifecycleCases,
};
