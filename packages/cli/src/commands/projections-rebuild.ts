import { setTimeout as delay } from 'node:timers/promises';
import type { Command } from 'commander';
import type { ProjectionControl } from '../inspect/inspector.ts';
import type { CliContext } from './context.ts';
import {
  type DatabaseFlags,
  databaseAction,
  databaseOptions,
  integerOption,
  notFound,
  printJson,
  withProjectionControl,
} from './database-options.ts';

interface RebuildFlags extends DatabaseFlags {
  timeoutMs: number;
  intervalMs: number;
  projectionVersion?: number;
}

/** `rebuilding orders: 1200/5000 (24%), 800/s, 5 s left`. */
const progressLine = (name: string, position: number, target: number, rate: number) => {
  const percent = target > 0 ? Math.floor((Math.min(position, target) / target) * 100) : 100;
  const left = rate > 0 ? `${Math.ceil((target - position) / rate)} s left` : 'time left unknown';
  return `rebuilding ${name}: ${position}/${target} (${percent}%), ${Math.round(rate)}/s, ${left}`;
};

/** `'orders'`, or `'orders' version 2` for a version above the first. */
const label = (name: string, version: number) => (version === 1 ? `'${name}'` : `'${name}' version ${version}`);

type Outcome =
  | { taken: false; interrupted: boolean; version: number }
  | {
      taken: true;
      done: boolean;
      interrupted: boolean;
      version: number;
      position: number;
      target: number;
      seconds: number;
    };

/**
 * Asks for a rebuild of the version given (default: the live one, read as the request is written), waits
 * for that version's runner to take the request, then follows that version's checkpoint up to the head it
 * found (a version built beside the live one never takes a request for another). It stops
 * following when the command is interrupted, or when the checkpoint has not moved for `--timeout-ms` (the
 * application stopped, or the projection failed): neither is reported as rebuilt.
 */
async function follow(
  control: ProjectionControl,
  name: string,
  flags: RebuildFlags,
  context: CliContext,
): Promise<Outcome> {
  context.followInterrupt();
  const { version } = await control.requestRebuild(name, flags.projectionVersion);
  const deadline = Date.now() + flags.timeoutMs;
  for (;;) {
    const { requestedAt: pending, head } = await control.rebuildProgress(name, version);
    // Taken once a runner cleared it. A newer request written over this one (another `rebuild`) stands for
    // both: this one waits for it to be taken too.
    if (pending === null) {
      const started = Date.now();
      let reportedAt = 0;
      let last = -1;
      let movedAt = Date.now();
      for (;;) {
        const { position } = await control.rebuildProgress(name, version);
        const seconds = (Date.now() - started) / 1000;
        const outcome = (done: boolean, interrupted: boolean): Outcome => ({
          taken: true,
          done,
          interrupted,
          version,
          position,
          target: head,
          seconds,
        });
        if (position >= head) return outcome(true, false);
        if (position !== last) {
          last = position;
          movedAt = Date.now();
        } else if (Date.now() - movedAt >= flags.timeoutMs) return outcome(false, false);
        if (!flags.json && Date.now() - reportedAt >= 1000) {
          reportedAt = Date.now();
          context.stderr(progressLine(name, position, head, seconds > 0 ? position / seconds : 0));
        }
        await delay(flags.intervalMs, undefined, { signal: context.signal }).catch(() => undefined);
        if (context.signal.aborted) return outcome(false, true);
      }
    }
    if (context.signal.aborted) return { taken: false, interrupted: true, version };
    if (Date.now() >= deadline) return { taken: false, interrupted: false, version };
    await delay(flags.intervalMs, undefined, { signal: context.signal }).catch(() => undefined);
  }
}

/** `factline projections rebuild <name>`: asks the application's runner to rebuild, and shows its progress. */
export function addProjectionRebuild(projections: Command, context: CliContext): void {
  databaseAction(
    databaseOptions(
      projections
        .command('rebuild <name>')
        .description("ask the application's runner to rebuild a projection; progress (rate, time left) on stderr")
        .option(
          '--timeout-ms <ms>',
          'how long a runner may take to pick the request up, and the rebuild to move on',
          integerOption('--timeout-ms', 1),
          30_000,
        )
        .option('--interval-ms <ms>', 'how often to read the progress', integerOption('--interval-ms', 1), 200)
        .option(
          '--projection-version <n>',
          'the version to rebuild (default: the live one); only the runner of that version takes the request',
          integerOption('--projection-version', 1),
        ),
    ),
    async (flags: RebuildFlags, name: string) => {
      const outcome = await withProjectionControl(flags, context, async (control) =>
        (await control.exists(name)) ? follow(control, name, flags, context) : undefined,
      );
      if (!outcome) return notFound(context, `no projection '${name}' has a checkpoint in this database`);
      if (!outcome.taken) {
        return notFound(
          context,
          outcome.interrupted
            ? `interrupted before a runner took the rebuild of ${label(name, outcome.version)}; the request stays until one does`
            : `no runner took the rebuild of ${label(name, outcome.version)} within ${flags.timeoutMs} ms (are the application's projections running?); the request stays until one does`,
        );
      }
      if (!outcome.done) {
        const where = `at position ${outcome.position} of ${outcome.target}`;
        return notFound(
          context,
          outcome.interrupted
            ? `interrupted while following the rebuild of ${label(name, outcome.version)}, ${where}: the runner goes on with it`
            : `the rebuild of ${label(name, outcome.version)} has not moved for ${flags.timeoutMs} ms, ${where} (has the application stopped, or the projection failed? see projections status)`,
        );
      }
      const rate = outcome.seconds > 0 ? outcome.target / outcome.seconds : 0;
      if (flags.json) {
        return printJson(context, {
          projection: name,
          version: outcome.version,
          target: outcome.target,
          seconds: outcome.seconds,
          rate,
        });
      }
      const which = outcome.version === 1 ? name : `${name} (version ${outcome.version})`;
      context.stdout(`${which} rebuilt up to position ${outcome.target} in ${outcome.seconds.toFixed(1)} s`);
    },
  );
}
