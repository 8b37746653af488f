import { ProjectionFailedError, TimeoutError, ValidationError } from '../errors/index.ts';
import type { RecordedEvent } from '../store/types.ts';
import type {
  ParkedEvent,
  Projection,
  ProjectionBackend,
  ProjectionError,
  ProjectionState,
  ProjectionStatus,
  RebuildProgress,
} from './types.ts';

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
   * `append` returned), so the next read of its model sees that event.
   * Rejects with `TimeoutError` after `timeoutMs`, or `ProjectionFailedError`
   * if the projection fails first.
   */
  waitFor(name: string, position: number, options?: WaitForOptions): Promise<void>;
  /**
   * Empties the read model (`reset`) and replays the log from the start while
   * appends go on; resolves when it has caught up with the head it started at.
   */
  rebuild(name: string, options?: RebuildOptions): Promise<void>;
  /** Starts a `failed` projection again at the event it failed on. */
  resume(name: string): Promise<void>;
  /** Events parked by projections with `onFailure: 'park'`. */
  parked(name?: string): Promise<ParkedEvent[]>;
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
  state: ProjectionState;
  checkpoint: number;
  head: number;
  lastError: ProjectionError | undefined;
  failure: ProjectionFailedError | undefined;
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
  options: ProjectionRunnerOptions = {},
): ProjectionRunner {
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
    if (issues.length > 0) throw new ValidationError(issues);
    workers.set(projection.name, {
      projection,
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
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (w.abort.signal.aborted) return true;
      try {
        const committed = await backend.commit(
          name,
          w.checkpoint,
          next,
          (tx) => w.projection.handle(batch, tx),
          w.projection.effects === 'external',
        );
        if (!committed) {
          // Another runner moved the checkpoint: continue from where it is.
          w.checkpoint = await backend.loadCheckpoint(name);
          return true;
        }
        w.checkpoint = next;
        if (w.rebuild) w.rebuild.applied += batch.length;
        return true;
      } catch (error) {
        lastFailure = error;
        recordError(w, error, (batch[0] as RecordedEvent).position);
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
      if (await backend.park(name, w.checkpoint, event, message)) {
        w.checkpoint = event.position;
        w.parked += 1;
      } else {
        w.checkpoint = await backend.loadCheckpoint(name);
      }
      return true;
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
        if (await backend.commit(w.projection.name, w.checkpoint, headBefore)) w.checkpoint = headBefore;
        else w.checkpoint = await backend.loadCheckpoint(w.projection.name);
      }
      w.head = Math.max(w.head, w.checkpoint);
      settleWaiters(w);
      reportRebuild(w);
      if (!full && !signal.aborted) {
        if (!w.rebuild) w.state = 'running';
        if (headBefore !== undefined && w.checkpoint >= (await store.headPosition())) {
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
    const name = w.projection.name;
    const wasRunning = w.loop !== undefined;
    await halt(w);
    const reset = w.projection.reset;
    if (!(await backend.commit(name, w.checkpoint, 0, reset ? (tx) => reset(tx) : undefined))) {
      w.checkpoint = await backend.loadCheckpoint(name);
      await backend.commit(name, w.checkpoint, 0, reset ? (tx) => reset(tx) : undefined);
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
        const init = w.projection.init;
        if (init) await backend.transaction((tx) => init(tx));
        w.checkpoint = await backend.loadCheckpoint(w.projection.name);
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
        checkpoint: w.checkpoint,
        head: w.head,
        lag: Math.max(0, w.head - w.checkpoint),
        ...(w.lastError ? { lastError: w.lastError } : {}),
        parked: w.parked,
      });
      if (name !== undefined) return view(worker(name));
      return [...workers.values()].map(view);
    }) as ProjectionRunner['status'],

    waitFor(name: string, position: number, waitOptions: WaitForOptions = {}) {
      let w: Worker<Tx>;
      try {
        w = worker(name);
      } catch (error) {
        return Promise.reject(error);
      }
      if (w.checkpoint >= position) return Promise.resolve();
      if (w.failure) return Promise.reject(w.failure);
      const timeoutMs = waitOptions.timeoutMs ?? 5000;
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

    async rebuild(name: string, rebuildOptions: RebuildOptions = {}) {
      const w = worker(name);
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
      w.checkpoint = await backend.loadCheckpoint(name);
      run(w);
    },

    parked: (name?: string) => backend.listParked(name),
  };
  return runner;
}
