import { type RedisClient, reconnectDelay } from '../connection.ts';
import type { RedisKeys } from '../keys.ts';
import { runScript } from '../scripts.ts';

/** How often the mover looks at the delayed set when it knows of nothing due sooner. */
const LOOK_EVERY_MS = 250;
/** Entries one script run moves at most (a run blocks the server meanwhile). */
const BATCH = 200;

/**
 * Moves due messages from the application's delayed set into their streams,
 * by a script (atomic: a message is moved once, whichever transport runs it).
 * Every transport of the application runs one; it looks every 250 ms, sooner
 * when told of an earlier due time (`wake`), at once again while a run found
 * a full batch. What is due is told by Redis's clock, which also times the
 * delays as they are scheduled (`release`, `schedule`): a process whose clock
 * is off moves nothing early. The stream never waits for it: only delayed
 * messages do.
 */
export function startDelayMover(client: RedisClient, keys: RedisKeys, report: (error: unknown) => void) {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let dueAt = Number.POSITIVE_INFINITY;
  let running: Promise<void> | undefined;
  let failures = 0;

  const schedule = (delay: number) => {
    if (stopped) return;
    clearTimeout(timer);
    dueAt = Date.now() + delay;
    timer = setTimeout(run, Math.max(0, delay));
  };

  function run() {
    if (running) return;
    running = (async () => {
      let delay = LOOK_EVERY_MS;
      try {
        // Due by Redis's clock: the processes that schedule and move delayed messages may disagree on the time.
        const moved = Number(await runScript(client, 'moveDue', [keys.delayed], [BATCH]));
        failures = 0;
        if (moved >= BATCH) delay = 0;
      } catch (error) {
        failures += 1;
        report(error);
        delay = reconnectDelay(failures, 100, 5000);
      }
      running = undefined;
      schedule(delay);
    })();
  }

  schedule(0);
  return {
    /** Something is due at `at`: look then (if sooner than planned). */
    wake(at: number) {
      if (stopped || at >= dueAt) return;
      schedule(Math.max(0, at - Date.now()));
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
