import { appendAndReadCases } from './append-and-read.ts';
import { atomicityCases } from './atomicity-and-idempotency.ts';
import { concurrencyCases } from './concurrency.ts';
import type { ConformanceCase } from './context.ts';
import { deletionCases } from './deletion.ts';
import { expectedVersionCases } from './expected-version.ts';
import { lifecycleCases } from './lifecycle.ts';
import { validationCases } from './validation.ts';

export type { CaseContext, ConformanceCase, EventStoreFactory } from './context.ts';

/** Every case of the event store contract, grouped by topic. */
export const eventStoreConformanceCases: Readonly<Record<string, readonly ConformanceCase[]>> = {
  'expected version': expectedVersionCases,
  'append and read': appendAndReadCases,
  'atomicity and idempotency': atomicityCases,
  validation: validationCases,
  deletion: deletionCases,
  concurrency: concurrencyCases,
  lifecycle: lifecycleCases,
};
