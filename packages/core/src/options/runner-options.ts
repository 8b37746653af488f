import type { ProjectionRunnerOptions } from '../projections/runner.ts';
import { projectionRunnerSpec } from './core-options.ts';

/**
 * The projection runner's own options out of an adapter's wider ones (which
 * the adapter has checked), so `createProjectionRunner` sees no foreign name.
 */
export function pickProjectionRunnerOptions(options: ProjectionRunnerOptions): ProjectionRunnerOptions {
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(projectionRunnerSpec)) {
    const value = (options as Record<string, unknown>)[key];
    if (value !== undefined) picked[key] = value;
  }
  return picked as ProjectionRunnerOptions;
}
