/**
 * The runner of the peers' self-checks (emmett-sqlite.check.ts, emmett-postgres.check.ts): each trial
 * once, in a place of its own (a directory, a schema), printing units, seconds, rate and extras.
 */
import type { Trial } from '../harness.ts';

/** A check: its name, and the trial it makes in a place. */
export type PeerCheck<Place> = [string, (place: Place) => Promise<Trial | string>];

/**
 * Runs every check in a fresh place from `enter`, removed by `leave` whatever happened; a trial that is
 * unavailable prints `skipped` with the reason. Returns whether any check failed.
 */
export async function runPeerChecks<Place>(
  checks: readonly PeerCheck<Place>[],
  enter: () => Promise<Place> | Place,
  leave: (place: Place) => unknown,
): Promise<boolean> {
  let failed = false;
  for (const [name, make] of checks) {
    const place = await enter();
    try {
      const trial = await make(place);
      if (typeof trial === 'string') {
        console.log(`${name}: skipped: ${trial}`);
        continue;
      }
      await trial.setup?.();
      const started = process.hrtime.bigint();
      const done = await trial.run();
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
      // A trial may time itself and report { units, seconds } (see harness.ts).
      const { units, seconds } = typeof done === 'number' ? { units: done, seconds: elapsed } : done;
      const extras = trial.extras?.() ?? {};
      await trial.teardown?.();
      const rate = (units / seconds).toFixed(1);
      console.log(
        `${name}: units=${units} seconds=${seconds.toFixed(3)} rate=${rate}/s extras=${JSON.stringify(extras)}`,
      );
    } catch (error) {
      failed = true;
      console.log(`${name}: FAILED: ${(error as Error).stack ?? String(error)}`);
    } finally {
      await leave(place);
    }
  }
  return failed;
}
