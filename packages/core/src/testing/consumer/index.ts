import { competingConsumerCases } from './competing.ts';
import type { ConsumerConformanceCase } from './context.ts';
import { correlationCases } from './correlation.ts';
import { deadLetterForeignCases } from './dead-letter-foreign.ts';
import { deadLetterRedriveCases } from './dead-letter-redrives.ts';
import { deadLetterCases } from './dead-letters.ts';
import { inboxCases } from './inbox.ts';
import { keyOrderCases } from './key-order.ts';
import { lifecycleCases } from './lifecycle.ts';
import { retryCases } from './retries.ts';
import { transactionCases } from './transactions.ts';

export {
  type ConsumerCaseContext,
  type ConsumerConformanceCase,
  type ConsumerEnvironment,
  type ConsumerRequirement,
  consumerSkipReasons,
} from './context.ts';

/** Every case of the consumer pipeline's contract, grouped by topic (roughly the pipeline's steps). */
export const consumerConformanceCases: Readonly<Record<string, readonly ConsumerConformanceCase[]>> = {
  'context: correlation and causation': correlationCases,
  'retries and dead-lettering': retryCases,
  'dead-letter store': [...deadLetterCases, ...deadLetterForeignCases],
  'dead-letter redrives': deadLetterRedriveCases,
  inbox: inboxCases,
  transactions: transactionCases,
  'key lanes: per-key order': keyOrderCases,
  'competing consumers': competingConsumerCases,
  'lifecycle and restarts': lifecycleCases,
};
