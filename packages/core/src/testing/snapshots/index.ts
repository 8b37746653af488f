import { commandCases } from './commands.ts';
import type { SnapshotConformanceCase } from './context.ts';
import { saveAndLoadCases } from './save-and-load.ts';
import { trustCases } from './trust.ts';
import { validationCases } from './validation.ts';
import { workflowCases } from './workflows.ts';

export type { SnapshotCaseContext, SnapshotConformanceCase, SnapshotEnvironment } from './context.ts';

/** Every case of the snapshot store contract, grouped by topic; the last three run `handleCommand` and a workflow handler on it. */
export const snapshotStoreConformanceCases: Readonly<Record<string, readonly SnapshotConformanceCase[]>> = {
  'save and load': saveAndLoadCases,
  validation: validationCases,
  'handleCommand policy and reads': commandCases,
  'handleCommand trust and failures': trustCases,
  'workflow instances': workflowCases,
};
