import { catchUpCases } from './catch-up.ts';
import type { ProjectionConformanceCase } from './context.ts';
import { controlCases } from './controls.ts';
import { failureCases } from './failures.ts';
import { lifecycleCases } from './lifecycle.ts';
import { rebuildCases } from './rebuild.ts';
import { statusCases } from './status.ts';
import { transactionCases } from './transactions.ts';
import { versionCases } from './versions.ts';

export type {
  CaseNames,
  CounterModel,
  CounterSnapshot,
  ProjectionCaseContext,
  ProjectionConformanceCase,
  ProjectionEnvironment,
} from './context.ts';

/** Every case of the projection runtime contract, grouped by topic. */
export const projectionConformanceCases: Readonly<Record<string, readonly ProjectionConformanceCase[]>> = {
  'catch-up and live': catchUpCases,
  'waiting and status': statusCases,
  failures: failureCases,
  rebuild: rebuildCases,
  'stop and resume': lifecycleCases,
  'versions: side-by-side rebuild': versionCases,
  transactions: transactionCases,
  'pause and rebuild from another process': controlCases,
};
