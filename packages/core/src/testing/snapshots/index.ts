import { commandCases } from './commands.ts';
import type { SnapshotConformanceCase } from './context.ts';
import { saveAndLoadCases } from './save-and-load.ts';
import { trustCases } from './trust.ts';
import { validationCases } from './validation.ts';

export type { SnapshotCaseContext, SnapshotConformanceCase, SnapshotEnvironment } from './context.ts';

/** Every case of the snapshot store contract, grouped by topic; the last two run `handleCommand` on it. */
export const snapshotStoreConformanceCases: Readonly<Record<string, readonly SnapshotConformanceCase[]>> = {
  'save and load': saveAndLoadCases,
  validation: validationCases,
  'handleCommand policy and reads': commandCases,
  'handleCommand trust and failures': trustCases,
};
