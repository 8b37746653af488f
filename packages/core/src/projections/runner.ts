import { ProjectionFailedError, ProjectionSupersededError, TimeoutError, ValidationError } from '../errors/index.ts';
import { checkProjectionRunnerOptions, checkRebuildOptions, checkWaitForOptions } from '../options/core-options.ts';
import type { RecordedEvent } from '../store/types.ts';
import { assertIntegerOption, assertPosition } from '../store/validation.ts';
import { waitForSubscription } from './subscription-wait.ts';
import type {
  ParkedEvent,
  Projection,
  ProjectionBackend,
  ProjectionError,
  ProjectionState,
  ProjectionStatus,
  ProjectionVersionRef,
  RebuildProgress,
} from './types.ts';
import { projectionVersionKey } from './types.ts';

export interface ProjectionRunnerOptions {
  /** Most events applied in one transaction while live (and the first batch of a catch-up). Default 500. */
  batchSize?: number;
  /**
   * While catching up (batches come back full) each batch is twice the size
   * of the one before, up to this many events; the first short batch goes
   * back to `batchSize`. Fewer, larger transactions let a handler fold more
   * events into each write. Default 10 × `batchSize`.
   */
  maxBatchSize?: number;
  /** Tries per batch (and per event, once a failing event is being isolated). Default 5. */
  maxAttempts?: number;
  /** First retry delay ceiling in ms (full jitter, doubling). Default 100. */
  initialBackoffMs?: number;
  /** Largest retry delay ceiling in ms. Default 5000. */
  maxBackoffMs?: number;
  /**
   * How long an idle projection waits for an append signal before looking
   * anyway (appends from another process do not signal). Default 1000 ms.
   */
  idleCheckMs?: number;
  /** Called on every handler error, retried or not (for logs and metrics). */
  onError?: (projection: string, error: unknown, position: number) => void;
  /**
   * Called when this runner makes a projection version live: the version
   * was newer than the live one and has caught up (`from` is the version
   * live before, `to` the projection's).
   */
  onSwitch?: (projection: string, from: number, to: number) => void;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface WaitForOptions {
  /** Default 5000 ms. */
  timeoutMs?: number;
}

export interface RebuildOptions {
  /** Called after every batch of the rebuild (render it as a progress bar). */
  onProgress?: (progress: RebuildProgress) => void;
}

export interface ProjectionRunner {
  /** Creates the read models (`init`) and starts every projection: catch-up from its checkpoint, then live. */
  start(): Promise<void>;
  /** Stops taking batches, lets the batch in flight commit, then resolves. */
  stop(): Promise<void>;
  status(): ProjectionStatus[];
  status(name: string): ProjectionStatus;
  /**
   * Resolves once `name` has processed `position` (e.g. the position an
   * `append` returned), so the next read of its model sees that event: the
   * model of the version this runner runs. Rejects with `TimeoutError` after
   * `timeoutMs`, `ProjectionFailedError` if the projection fails first, or
   * `ProjectionSupersededError` once a newer version of it is live.
   */
  waitFor(name: string, position: number, options?: WaitForOptions): Promise<void>;
  /**
   * Empties the read model (`reset`) and replays the log from the start while
   * appends go on; resolves when it has caught up with the head it started at.
   */
  rebuild(name: string, options?: RebuildOptions): Promise<void>;
  /** Starts a `failed` projection again at the event it failed on. */
  resume(name: string): Promise<void>;
  /** Events parked by projections with `onFailure: 'park'` (of the version this runner runs, given a name). */
  parked(name?: string): Promise<ParkedEvent[]>;
  /**
   * The version of `name` recorded as live, read from the store (1 until a
   * newer version switched): the version whose tables reads should use.
   */
  liveVersion(name: string): Promise<number>;
}

const NAME = /^[a-z0-9_.-]{1,100}$/;

interface Waiter {
  position: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Rebuild {
  target: number;
  applied: number;
  startedAt: number;
  startPosition: number;
  onProgress: ((progress: RebuildProgress) => void) | undefined;
  done: () => void;
  fail: (error: unknown) => void;
}

interface Worker<Tx> {
  projection: Projection<Tx>;
  /** `projection.version`, default 1. */
  version: number;
  /** The name of this version's checkpoint (and parked events). */
  key: string;
  /** The live version as last read, and when. */
  live: number;
  liveReadAt: number;
  /** Set when a newer version is live: the runner does not run this one. */
  superseded: ProjectionSupersededError | undefined;
  state: ProjectionState;
  checkpoint: number;
  head: number;
  lastError: ProjectionError | undefined;
  failure: ProjectionFailedError | ProjectionSupersededError | undefined;
  parked: number;
  /** While set, events are applied one at a time up to this position, to find the one that fails. */
  isolateUntil: number;
  waiters: Waiter[];
  abort: AbortController;
  loop: Promise<void> | undefined;
  rebuild: Rebuild | undefined;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The runtime of async projections, the same on every adapter: each
 * projection catches up from its saved checkpoint in batches, then follows
 * the log live (woken by the adapter's append signal, with a periodic check
 * as a fallback). Every batch commits its read-model writes and its new
 * checkpoint in one transaction, so a crash at any point neither loses nor
 * re-applies an event. A failing batch is retried with backoff, then split
 * to find the failing event, which either stops the projection (`failed`,
 * with the error and the position) or is parked, as the projection says.
 */
export function createProjectionRunner<Tx>(
  backend: ProjectionBackend<Tx>,
  projections: readonly Projection<Tx>[],
  given?: ProjectionRunnerOptions,
): ProjectionRunner {
  const options = checkProjectionRunnerOptions(given) ?? {};
  const batchSize = options.batchSize ?? 500;
  const maxBatchSize = Math.max(batchSize, options.maxBatchSize ?? batchSize * 10);
  const maxAttempts = options.maxAttempts ?? 5;
  const initialBackoff = options.initialBackoffMs ?? 100;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  const idleCheckMs = options.idleCheckMs ?? 1000;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  const store = backend.store;

  const workers = new Map<string, Worker<Tx>>();
  for (const projection of projections) {
    const issues = [];
    if (typeof projection?.name !== 'string' || !NAME.test(projection.name)) {
      issues.push({ path: 'name', message: 'must be 1–100 characters of a-z, 0-9, _, . and -' });
    } else if (workers.has(projection.name)) {
      issues.push({ path: 'name', message: `'${projection.name}' is used twice` });
    }
    if (!Array.isArray(projection?.handles) || projection.handles.length === 0) {
      issues.push({ path: 'handles', message: 'must list at least one event type' });
    }
    if (typeof projection?.handle !== 'function') issues.push({ path: 'handle', message: 'must be a function' });
    const version = projection?.version ?? 1;
    if (!Number.isSafeInteger(version) || version < 1) {
      issues.push({ path: 'version', message: 'must be a positive integer' });
    } else if (version > 1 && (!backend.loadLiveVersion || !backend.recordLiveVersion)) {
      issues.push({ path: 'version', message: 'this backend records no live versions: only version 1 runs on it' });
    }
    if (projection?.retire !== undefined && typeof projection.retire !== 'function') {
      issues.push({ path: 'retire', message: 'must be a function' });
    }
    if (issues.length > 0) throw new ValidationError(issues);
    workers.set(projection.name, {
      projection,
      version,
      key: projectionVersionKey(projection.name, version),
      live: 1,
      liveReadAt: 0,
      superseded: undefined,
      state: 'stopped',
      checkpoint: 0,
      head: 0,
      lastError: undefined,
      failure: undefined,
      parked: 0,
      isolateUntil: 0,
      waiters: [],
      abort: new AbortController(),
      loop: undefined,
      rebuild: undefined,
    });
  }

  const worker = (name: string): Worker<Tx> => {
    const found = workers.get(name);
    if (!found) throw new ValidationError({ path: 'projection', message: `no projection named '${name}'` });
    return found;
  };

  const markFailed = (w: Worker<Tx>, failure: ProjectionFailedError) => {
    w.failure = failure;
    w.state = 'failed';
    const rebuild = w.rebuild;
    w.rebuild = undefined;
    rebuild?.fail(failure);
    settleWaiters(w);
  };

  const versionOf = (w: Worker<Tx>): ProjectionVersionRef => ({ projection: w.projection.name, version: w.version });

  const readLive = async (w: Worker<Tx>): Promise<number> => {
    w.live = backend.loadLiveVersion ? await backend.loadLiveVersion(w.projection.name) : 1;
    w.liveReadAt = Date.now();
    return w.live;
  };

  /** A newer version is live: this one stops (`stopped`, with the reason as `lastError`) and waiters reject. */
  const supersede = (w: Worker<Tx>) => {
    const error = new ProjectionSupersededError(w.projection.name, w.version, w.live);
    w.superseded = error;
    w.failure = error;
    w.state = 'stopped';
    w.lastError = { message: error.message, position: w.checkpoint, at: new Date() };
    const rebuild = w.rebuild;
    w.rebuild = undefined;
    rebuild?.fail(error);
    settleWaiters(w);
  };

  /** Reads the live version; true (and superseded) when it is newer than this one. */
  const checkSuperseded = async (w: Worker<Tx>): Promise<boolean> => {
    if ((await readLive(w)) <= w.version) return false;
    supersede(w);
    return true;
  };

  /**
   * This version (newer than the live one) has caught up: record it as live,
   * then tell `onSwitch` and let the projection retire the version before.
   * Returns false when a still newer version went live first (superseded).
   */
  const switchLive = async (w: Worker<Tx>): Promise<boolean> => {
    const name = w.projection.name;
    // (A version above 1 only runs on a backend that records live versions.)
    const before = (await backend.recordLiveVersion?.(name, w.version)) ?? w.version;
    w.liveReadAt = Date.now();
    if (before > w.version) {
      w.live = before;
      supersede(w);
      return false;
    }
    w.live = w.version;
    if (before < w.version) {
      try {
        options.onSwitch?.(name, before, w.version);
      } catch {
        // The callback's own failure changes nothing.
      }
      const retire = w.projection.retire;
      if (retire) {
        try {
          await backend.transaction((tx) => retire(tx, before));
        } catch (error) {
          recordError(w, error, w.checkpoint);
        }
      }
    }
    return true;
  };

  const settleWaiters = (w: Worker<Tx>) => {
    w.waiters = w.waiters.filter((waiter) => {
      if (w.checkpoint >= waiter.position) {
        clearTimeout(waiter.timer);
        waiter.resolve();
        return false;
      }
      if (w.failure) {
        clearTimeout(waiter.timer);
        waiter.reject(w.failure);
        return false;
      }
      return true;
    });
  };

  const reportRebuild = (w: Worker<Tx>) => {
    const rebuild = w.rebuild;
    if (!rebuild) return;
    const seconds = Math.max((Date.now() - rebuild.startedAt) / 1000, 1e-3);
    const span = Math.max(rebuild.target - rebuild.startPosition, 1);
    const done = Math.min(w.checkpoint, rebuild.target) - rebuild.startPosition;
    const positionRate = done / seconds;
    rebuild.onProgress?.({
      projection: w.projection.name,
      position: w.checkpoint,
      target: rebuild.target,
      applied: rebuild.applied,
      fraction: Math.min(1, Math.max(0, done / span)),
      rate: rebuild.applied / seconds,
      etaSeconds: positionRate > 0 ? Math.max(0, rebuild.target - w.checkpoint) / positionRate : 0,
    });
    if (w.checkpoint >= rebuild.target) {
      w.rebuild = undefined;
      rebuild.done();
    }
  };

  const readBatch = async (w: Worker<Tx>, limit: number, after = w.checkpoint): Promise<RecordedEvent[]> => {
    const batch: RecordedEvent[] = [];
    for await (const event of store.readAll({
      after,
      types: w.projection.handles,
      limit,
      batchSize: limit,
    })) {
      batch.push(event);
    }
    return batch;
  };

  const recordError = (w: Worker<Tx>, error: unknown, position: number) => {
    w.lastError = {
      message: error instanceof Error ? error.message : String(error),
      ...(error instanceof Error && error.stack ? { stack: error.stack } : {}),
      position,
      at: new Date(),
    };
    options.onError?.(w.projection.name, error, position);
  };

  /** Applies one batch with retries. Returns false when the projection failed and must stop. */
  const apply = async (w: Worker<Tx>, batch: RecordedEvent[], next: number): Promise<boolean> => {
    const name = w.projection.name;
    let lastFailure: unknown;
    /** Tries in a row that found no subscription (a relay): they wait, and count as no attempt. */
    let holds = 0;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (w.abort.signal.aborted) return true;
      try {
        const committed = await backend.commit({
          name: w.key,
          expected: w.checkpoint,
          checkpoint: next,
          work: (tx) => w.projection.handle(batch, tx),
          external: w.projection.effects === 'external',
          version: versionOf(w),
        });
        if (!committed) {
          // Another runner moved the checkpoint (continue from where it is), or a newer version is live.
          w.checkpoint = await backend.loadCheckpoint(w.key);
          return !(await checkSuperseded(w));
        }
        w.checkpoint = next;
        if (w.rebuild) w.rebuild.applied += batch.length;
        return true;
      } catch (error) {
        recordError(w, error, (batch[0] as RecordedEvent).position);
        const wait = { initialMs: initialBackoff, maxMs: maxBackoff, sleep: options.sleep };
        if (await waitForSubscription(error, ++holds, w.abort.signal, wait)) {
          attempt -= 1;
          continue;
        }
        lastFailure = error;
        if (attempt < maxAttempts) {
          await sleep(random() * Math.min(maxBackoff, initialBackoff * 2 ** (attempt - 1)));
        }
      }
    }
    if (batch.length > 1) {
      // Some event of the batch fails: go one event at a time to find which.
      w.isolateUntil = (batch[batch.length - 1] as RecordedEvent).position;
      return true;
    }
    const event = batch[0] as RecordedEvent;
    if (w.projection.onFailure === 'park') {
      const message = lastFailure instanceof Error ? (lastFailure.stack ?? lastFailure.message) : String(lastFailure);
      if (await backend.park(w.key, w.checkpoint, event, message, versionOf(w))) {
        w.checkpoint = event.position;
        w.parked += 1;
        return true;
      }
      w.checkpoint = await backend.loadCheckpoint(w.key);
      return !(await checkSuperseded(w));
    }
    markFailed(w, new ProjectionFailedError(name, event.position, lastFailure));
    return false;
  };

  const loop = async (w: Worker<Tx>) => {
    const signal = w.abort.signal;
    // While catching up, the next batch is read while the current one commits.
    let prefetched: { after: number; limit: number; batch: Promise<RecordedEvent[]> } | undefined;
    let previousFull = false;
    let headReadAt = 0;
    /** The next batch's size: grows while catching up, back to `batchSize` once live. */
    let size = batchSize;
    while (!signal.aborted) {
      const isolating = w.isolateUntil > w.checkpoint;
      const limit = isolating ? 1 : size;
      // The head, read before the batch, lets a short batch move the checkpoint up to it. While
      // batches come back full it is not needed for that, only for status: read it once a second.
      let headBefore: number | undefined;
      const usePrefetch = prefetched?.after === w.checkpoint && prefetched.limit === limit;
      if (!usePrefetch && (!previousFull || Date.now() - headReadAt > 1000)) {
        headBefore = await store.headPosition();
        headReadAt = Date.now();
        w.head = Math.max(w.head, headBefore);
      } else if (Date.now() - headReadAt > 1000 || w.head <= w.checkpoint) {
        // While catching up, keep the head ahead of the checkpoint, or lag would read 0 too early.
        w.head = Math.max(w.head, await store.headPosition());
        headReadAt = Date.now();
      }
      const batch = usePrefetch
        ? await (prefetched as { batch: Promise<RecordedEvent[]> }).batch
        : await readBatch(w, limit);
      prefetched = undefined;
      const full = batch.length === limit;
      previousFull = full;
      if (!isolating) size = full ? Math.min(size * 2, maxBatchSize) : batchSize;
      if (!w.rebuild && !isolating && full) w.state = 'catching-up';
      if (batch.length > 0) {
        const last = (batch[batch.length - 1] as RecordedEvent).position;
        // A short page read everything up to the head seen before it: nothing of ours lies between.
        const next = !full && !isolating && headBefore !== undefined ? Math.max(last, headBefore) : last;
        if (full && !isolating) {
          const ahead = readBatch(w, size, last);
          ahead.catch(() => undefined); // read again (and fail visibly) in the next turn if it failed
          prefetched = { after: last, limit: size, batch: ahead };
        }
        if (!(await apply(w, batch, next))) return;
      } else if (headBefore !== undefined && headBefore > w.checkpoint) {
        // Nothing of ours up to the head: move the checkpoint there, so lag and waitFor see it.
        if (
          await backend.commit({ name: w.key, expected: w.checkpoint, checkpoint: headBefore, version: versionOf(w) })
        ) {
          w.checkpoint = headBefore;
        } else {
          w.checkpoint = await backend.loadCheckpoint(w.key);
          if (await checkSuperseded(w)) return;
        }
      }
      w.head = Math.max(w.head, w.checkpoint);
      settleWaiters(w);
      reportRebuild(w);
      if (!full && !signal.aborted) {
        // A version built side by side has caught up with the head it read (lag 0): it goes live.
        const caughtUp = !isolating && headBefore !== undefined && w.checkpoint >= headBefore;
        if (w.version > w.live && caughtUp && !(await switchLive(w))) return;
        if (!w.rebuild) w.state = w.version > w.live ? 'catching-up' : 'running';
        if (headBefore !== undefined && w.checkpoint >= (await store.headPosition())) {
          // Idle: has a newer version gone live meanwhile? (A batch's commit would be refused anyway.)
          if (w.live > w.version || Date.now() - w.liveReadAt >= idleCheckMs) {
            if (await checkSuperseded(w)) return;
          }
          await backend.waitForAppends(w.checkpoint, idleCheckMs, signal);
        }
      }
    }
  };

  const run = (w: Worker<Tx>) => {
    w.abort = new AbortController();
    w.failure = undefined;
    w.state = w.rebuild ? 'rebuilding' : 'catching-up';
    w.loop = loop(w).catch((error: unknown) => {
      // A storage failure outside the handler (reading the log, the checkpoint): visible, never silent.
      recordError(w, error, w.checkpoint);
      markFailed(w, new ProjectionFailedError(w.projection.name, w.checkpoint, error));
    });
  };

  const halt = async (w: Worker<Tx>) => {
    w.abort.abort();
    await w.loop;
    w.loop = undefined;
    if (w.state !== 'failed') w.state = 'stopped';
    // A rebuild that was stopped before it finished: its caller must not wait forever.
    const rebuild = w.rebuild;
    w.rebuild = undefined;
    rebuild?.fail(new TimeoutError(`projection '${w.projection.name}' was stopped before its rebuild finished`));
  };

  const rebuildNow = async (w: Worker<Tx>, rebuildOptions: RebuildOptions) => {
    const wasRunning = w.loop !== undefined;
    await halt(w);
    const reset = w.projection.reset;
    const work = reset ? (tx: Tx) => reset(tx) : undefined;
    if (!(await backend.commit({ name: w.key, expected: w.checkpoint, checkpoint: 0, work, version: versionOf(w) }))) {
      w.checkpoint = await backend.loadCheckpoint(w.key);
      if (await checkSuperseded(w)) throw w.superseded;
      await backend.commit({ name: w.key, expected: w.checkpoint, checkpoint: 0, work, version: versionOf(w) });
    }
    w.checkpoint = 0;
    w.isolateUntil = 0;
    const target = await store.headPosition();
    const finished = new Promise<void>((resolve, reject) => {
      w.rebuild = {
        target,
        applied: 0,
        startedAt: Date.now(),
        startPosition: 0,
        onProgress: rebuildOptions.onProgress,
        done: resolve,
        fail: reject,
      };
    });
    run(w);
    await finished;
    if (!wasRunning && !started) await halt(w);
  };

  const rebuilding = new Set<string>();
  let started = false;

  const runner: ProjectionRunner = {
    async start() {
      if (started) return;
      started = true;
      for (const w of workers.values()) {
        w.superseded = undefined;
        w.failure = undefined;
        await readLive(w);
        w.checkpoint = await backend.loadCheckpoint(w.key);
        if (w.live > w.version) {
          // Never written to again: not even `init`.
          supersede(w);
          continue;
        }
        const init = w.projection.init;
        if (init) await backend.transaction((tx) => init(tx));
        run(w);
      }
    },

    async stop() {
      started = false;
      await Promise.all([...workers.values()].map(halt));
      for (const w of workers.values()) {
        for (const waiter of w.waiters) {
          clearTimeout(waiter.timer);
          waiter.reject(
            new TimeoutError(`projection '${w.projection.name}' stopped before position ${waiter.position}`),
          );
        }
        w.waiters = [];
      }
    },

    status: ((name?: string) => {
      const view = (w: Worker<Tx>): ProjectionStatus => ({
        name: w.projection.name,
        state: w.state,
        version: w.version,
        liveVersion: w.live,
        checkpoint: w.checkpoint,
        head: w.head,
        lag: Math.max(0, w.head - w.checkpoint),
        ...(w.lastError ? { lastError: w.lastError } : {}),
        parked: w.parked,
      });
      if (name !== undefined) return view(worker(name));
      return [...workers.values()].map(view);
    }) as ProjectionRunner['status'],

    waitFor(name: string, position: number, given?: WaitForOptions) {
      let w: Worker<Tx>;
      let timeoutMs: number;
      try {
        const waitOptions = checkWaitForOptions(given) ?? {};
        w = worker(name);
        assertPosition(position);
        timeoutMs = assertIntegerOption(waitOptions?.timeoutMs, 'timeoutMs') ?? 5000;
      } catch (error) {
        return Promise.reject(error);
      }
      if (w.superseded) return Promise.reject(w.superseded);
      if (w.checkpoint >= position) return Promise.resolve();
      if (w.failure) return Promise.reject(w.failure);
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          position,
          resolve,
          reject,
          timer: setTimeout(() => {
            w.waiters = w.waiters.filter((x) => x !== waiter);
            reject(
              new TimeoutError(
                `projection '${name}' had not reached position ${position} after ${timeoutMs} ms (at ${w.checkpoint})`,
              ),
            );
          }, timeoutMs),
        };
        w.waiters.push(waiter);
      });
    },

    async rebuild(name: string, given?: RebuildOptions) {
      const rebuildOptions = checkRebuildOptions(given) ?? {};
      const w = worker(name);
      if (w.superseded) throw w.superseded;
      if (w.rebuild || rebuilding.has(name)) {
        throw new ValidationError({ path: 'projection', message: `'${name}' is already rebuilding` });
      }
      rebuilding.add(name);
      try {
        await rebuildNow(w, rebuildOptions);
      } finally {
        rebuilding.delete(name);
      }
    },

    async resume(name: string) {
      const w = worker(name);
      if (w.state !== 'failed') return;
      await halt(w);
      w.checkpoint = await backend.loadCheckpoint(w.key);
      run(w);
    },

    async parked(name?: string) {
      return backend.listParked(name === undefined ? undefined : worker(name).key);
    },

    async liveVersion(name: string) {
      return readLive(worker(name));
    },
  };
  return runner;
}
