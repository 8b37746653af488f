import { settledWithin } from '../adapter/deadline.ts';
import { isStoreClosedError } from '../errors/index.ts';
import type { LaneSlot } from './consumer-inbox.ts';
import type { ConsumerErrorStage } from './consumer-options.ts';
import type { Message } from './message.ts';
import type { Delivery } from './transport.ts';

/** Step 5 of the pipeline, per-key order: one lane per message key, keys in parallel. */
export interface KeyLanes {
  /** Queues each delivery in its key's lane, in arrival order, and starts waiting lanes while there is room. */
  add(deliveries: readonly Delivery[]): void;
  /** Deliveries in the lanes, in flight or waiting. */
  buffered(): number;
  /** Runs that only wait for a group commit shared with other runs (their lane left its place to another key). */
  settling(): number;
  /** Resolves when a lane finishes or starts waiting for a shared group commit, or when `signal` aborts. */
  laneFreed(signal: AbortSignal): Promise<void>;
  /** Waits for the lanes in flight, up to `ms`. */
  drain(ms: number): Promise<void>;
  /** Gives the deliveries that never started back to the transport; failures reported, bounded by `ms`. */
  giveBack(ms: number): Promise<void>;
  /**
   * Extends by `visibility` each delivery waiting its turn (not yet started) whose visibility was last
   * set a third of it ago or more (longer where a delayed retry holds its key), so that a key's
   * messages queued behind a busy lane never become visible to another consumer while they wait here.
   */
  keepAlive(visibility: number): Promise<void>;
}

export interface KeyLaneSettings {
  /** Most lanes (keys) working at once; a lane only waiting for a shared group commit does not count. */
  concurrency: number;
  /**
   * Steps 1–4 for one delivery: true once settled, false when it was given
   * back after a failed step. `slot` tells the lane when the run only waits
   * for a group commit shared with other runs.
   */
  process: (delivery: Delivery, slot: LaneSlot) => Promise<boolean>;
  /** The consumer's stop signal (a new one per start): no lane starts or goes on once it aborted. */
  signal: () => AbortSignal;
  /**
   * The visibility timeout a delivery is fetched with, ms (0: none). An extension never sets less than it, and a
   * delivery whose turn comes a third of it or more after its visibility was last set is extended by it first.
   * Default 0.
   */
  visibility?: number;
  report: (error: unknown, stage: ConsumerErrorStage, message?: Message) => void;
}

/** A lane's place in `running` while its run is being started. */
const STARTING: Promise<void> = Promise.resolve();

/**
 * A key's deliveries run one after another, in arrival order; up to
 * `concurrency` keys work at once. A lane whose run only waits for a group
 * commit shared with other runs (an inbox with group commits) leaves its
 * place to another key meanwhile, so one commit covers more runs than there
 * are lanes; its own key still waits for it. When a delivery is given back
 * after a failed step, its key's later deliveries are given back too, behind
 * it, so none runs before it.
 *
 * @example
 * const lanes = createKeyLanes({ concurrency: 8, process, signal: () => stopping.signal, report, visibility: 30_000 });
 * lanes.add(await subscription.receive(32, 1000, signal));
 */
export function createKeyLanes(settings: KeyLaneSettings): KeyLanes {
  const { concurrency, process, signal, report } = settings;
  const visibility = settings.visibility ?? 0;
  /** Per key, the deliveries waiting their turn, in arrival order (the one in flight first). */
  const lanes = new Map<string, Delivery[]>();
  const running = new Map<string, Promise<void>>();
  /** Keys with deliveries waiting and no run, in the order their lanes began: the next to start. */
  const ready = new Set<string>();
  /** Running keys whose run only waits for a shared group commit: they leave their place to others. */
  const waiting = new Set<string>();
  /** Keys held by a delayed retry: until when (`Date.now()`) their deliveries are kept invisible to others. */
  const holds = new Map<string, number>();
  let freed: (() => void) | undefined;
  /** When each buffered delivery's visibility was last set: fetched, or extended here. */
  const refreshed = new WeakMap<Delivery, number>();

  /** Extends `deliveries`' visibility by `ms`; failures reported (a closed transport is, by the step that finds it). */
  const extendAll = async (deliveries: readonly Delivery[], ms: number) => {
    const at = Date.now();
    for (const d of deliveries) refreshed.set(d, at);
    await Promise.all(
      deliveries.map((d) =>
        d.extend(ms).catch((error: unknown) => {
          if (!isStoreClosedError(error)) report(error, 'extend', d.message);
        }),
      ),
    );
  };

  /**
   * Extends `delivery`, whose turn came, by the visibility timeout (longer while a delayed retry holds its key)
   * when its visibility was set a third of it ago or more: its handler starts with at least two thirds of it.
   */
  const freshen = (key: string, delivery: Delivery): Promise<void> | undefined => {
    if (!(visibility > 0)) return undefined;
    const now = Date.now();
    if (now - (refreshed.get(delivery) ?? 0) < visibility / 3) return undefined;
    const hold = holds.get(key);
    return extendAll([delivery], Math.max(visibility, hold === undefined ? 0 : hold - now));
  };

  /** Works off `lane`, the deliveries of `key`; settles once the key gave its place up. */
  const runLane = async (key: string, lane: Delivery[], slot: LaneSlot) => {
    // The stop of the start it belongs to: a run that outlived a stop's drain never goes on under a later start.
    const stop = signal();
    try {
      while (lane.length > 0 && !stop.aborted) {
        const next = lane[0] as Delivery;
        const extending = freshen(key, next);
        if (extending) await extending;
        const settled = await process(next, slot);
        lane.shift();
        if (settled && lane.length > 0 && running.size - waiting.size > concurrency) {
          // While this run waited for its commit another key took its place: its next message
          // waits its turn (the key is ready again once this run settled), or more than
          // `concurrency` handlers would run at once.
          break;
        }
        if (!settled) {
          // Its key's later messages must not run before it: they go back too, behind it.
          const rest = lane.splice(0);
          await Promise.all(
            rest.map((d) =>
              d.release(0).catch((error: unknown) => {
                // A closed transport was reported once already, by the step that failed.
                if (!isStoreClosedError(error)) report(error, 'release', d.message);
              }),
            ),
          );
        }
      }
      // A lane given back at a stop was replaced by the next start's lane of the key, if any: that one stays.
      if (lane.length === 0 && lanes.get(key) === lane) {
        lanes.delete(key);
        holds.delete(key);
      }
    } finally {
      running.delete(key);
      waiting.delete(key);
      if (lanes.has(key)) ready.add(key);
      startWaitingLanes();
      freed?.();
    }
  };

  const startLane = (key: string) => {
    const lane = lanes.get(key);
    // Only a lane with work starts: its run awaits its first delivery, so it settles after it is registered.
    if (lane === undefined || lane.length === 0) {
      lanes.delete(key);
      return;
    }
    const slot: LaneSlot = {
      waiting() {
        if (!running.has(key) || waiting.has(key)) return;
        waiting.add(key);
        startWaitingLanes();
        // The fetch loop may bring more keys into the group meanwhile.
        freed?.();
      },
      working: () => void waiting.delete(key),
      async extendWaiting(ms) {
        // Those that join the lane while the hold lasts are extended as they come (`add`).
        holds.set(key, Date.now() + ms);
        // Never less than the visibility they were fetched with: an extension sets it from now.
        await extendAll(lane.slice(1), Math.max(visibility, ms));
      },
    };
    // Registered before its run starts: the run may reach a group commit (and call `slot.waiting`)
    // before its first await.
    running.set(key, STARTING);
    running.set(key, runLane(key, lane, slot));
  };

  const startWaitingLanes = () => {
    if (signal().aborted) return;
    for (const key of ready) {
      if (running.size - waiting.size >= concurrency) return;
      // A lane that just emptied is still running until it settles: its key starts again after.
      if (running.has(key)) continue;
      ready.delete(key);
      startLane(key);
    }
  };

  return {
    add(deliveries) {
      const now = Date.now();
      for (const delivery of deliveries) {
        refreshed.set(delivery, now);
        const key = delivery.message.key;
        const lane = lanes.get(key);
        if (lane) {
          lane.push(delivery);
          // Behind a delayed retry: kept from other consumers as long as the retry holds the key.
          const until = holds.get(key);
          if (until !== undefined && until - now > visibility) void extendAll([delivery], until - now);
        } else {
          lanes.set(key, [delivery]);
          ready.add(key);
        }
      }
      startWaitingLanes();
    },

    buffered() {
      let count = 0;
      for (const lane of lanes.values()) count += lane.length;
      return count;
    },

    settling: () => waiting.size,

    laneFreed(stop) {
      return new Promise<void>((resolve) => {
        const done = () => {
          stop.removeEventListener('abort', done);
          freed = undefined;
          resolve();
        };
        freed = done;
        stop.addEventListener('abort', done, { once: true });
      });
    },

    async drain(ms) {
      await settledWithin(Promise.all(running.values()), ms);
    },

    async keepAlive(visibility) {
      if (!(visibility > 0)) return;
      const now = Date.now();
      const extending: Promise<void>[] = [];
      for (const [key, lane] of lanes) {
        // The delivery in flight keeps the visibility it had (a handler's own budget); those behind it are kept.
        const waitingHere = running.has(key) ? lane.slice(1) : lane;
        const stale = waitingHere.filter((d) => now - (refreshed.get(d) ?? 0) >= visibility / 3);
        if (stale.length === 0) continue;
        const hold = holds.get(key);
        extending.push(extendAll(stale, Math.max(visibility, hold === undefined ? 0 : hold - now)));
      }
      await Promise.all(extending);
    },

    async giveBack(ms) {
      const waiting: Delivery[] = [];
      // A run the drain left (its handler still going) keeps only that delivery: the rest goes back, never run here.
      for (const [key, lane] of lanes) waiting.push(...(running.has(key) ? lane.splice(1) : lane));
      lanes.clear();
      ready.clear();
      holds.clear();
      const released = Promise.all(
        waiting.map((d) => d.release(0).catch((error: unknown) => report(error, 'release', d.message))),
      );
      if (!(await settledWithin(released, ms))) {
        report(
          new Error(
            `giving ${waiting.length} messages back took over ${ms} ms; they return after their visibility timeout`,
          ),
          'release',
        );
      }
    },
  };
}
