import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Decider, type Event, handleCommand } from '@factline/core';
import { getSqliteEventStore, type SqliteEventStore } from '@factline/sqlite';
import type { Subject, Trial, Workload } from '../harness.ts';
import { orderData } from './payload.ts';
import { openRaw, rawInserter } from './sqlite-raw.ts';

type PeerModule = typeof import('../peers/emmett-sqlite.ts');
let peer: PeerModule | string | undefined;
async function emmett(): Promise<PeerModule | string> {
  if (peer === undefined) {
    peer = await import('../peers/emmett-sqlite.ts').catch(
      (error: Error) => `emmett peer unavailable: ${error.message}`,
    );
  }
  return peer;
}

function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'factline-bench-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A trial on a fresh Factline store in a fresh directory. */
function factlineTrial(
  work: (store: SqliteEventStore) => Promise<number>,
  seed?: (store: SqliteEventStore) => Promise<void>,
  extras?: () => Record<string, number>,
): Subject['trial'] {
  return () => {
    const { dir, cleanup } = tempDir();
    let store: SqliteEventStore;
    const trial: Trial = {
      setup: async () => {
        store = getSqliteEventStore({ path: join(dir, 'factline.db') });
        await seed?.(store);
      },
      run: () => work(store),
      teardown: async () => {
        await store.close();
        cleanup();
      },
    };
    if (extras) trial.extras = extras;
    return trial;
  };
}

export function emmettSubject(
  make: (peer: PeerModule, dir: string) => Promise<Trial | string>,
  repeat?: number,
): Subject {
  return {
    name: 'emmett',
    // A peer's crash or stray error event fails its figure only, not the run.
    isolate: true,
    ...(repeat === undefined ? {} : { repeat }),
    trial: async () => {
      const loaded = await emmett();
      if (typeof loaded === 'string') return loaded;
      const { dir, cleanup } = tempDir();
      const made = await make(loaded, dir);
      if (typeof made === 'string') {
        cleanup();
        return made;
      }
      const trial = loaded.guardEmmettTrial(made);
      const teardown = trial.teardown;
      trial.teardown = async () => {
        await teardown?.();
        cleanup();
      };
      return trial;
    },
  };
}

function rawTrial(
  work: (db: ReturnType<typeof openRaw>) => number,
  seed?: (db: ReturnType<typeof openRaw>) => void,
): Subject {
  return {
    name: 'raw',
    trial: () => {
      const { dir, cleanup } = tempDir();
      let db: ReturnType<typeof openRaw>;
      return {
        setup: () => {
          db = openRaw(join(dir, 'raw.db'));
          seed?.(db);
        },
        run: () => work(db),
        teardown: () => {
          db.close();
          cleanup();
        },
      };
    },
  };
}

type Added = Event<'Added', { by: number }>;
const counter: Decider<number, { by: number }, Added> = {
  initialState: () => 0,
  evolve: (n) => n + 1,
  decide: (command) => [{ type: 'Added', data: command }],
};

const SINGLE = 2000;
const PER_WRITER = 100;

export const sqliteWorkloads: Workload[] = [
  {
    name: 'sqlite-append-single',
    warmup: true,
    description: `${SINGLE} single-event appends, each to a new stream, one at a time (synchronous=FULL)`,
    unit: 'events/s',
    subjects: [
      {
        name: 'factline',
        trial: factlineTrial(async (store) => {
          for (let i = 0; i < SINGLE; i++) {
            await store.append(`order-${i}`, [{ type: 'OrderPlaced', data: orderData(i) }], {
              expectedVersion: 'no-stream',
            });
          }
          return SINGLE;
        }),
      },
      rawTrial((db) => {
        const { one } = rawInserter(db);
        for (let i = 0; i < SINGLE; i++) one(`order-${i}`, 1, JSON.stringify(orderData(i)));
        return SINGLE;
      }),
      emmettSubject((p, dir) => p.emmettAppendSingle(dir, 300)),
    ],
  },
  {
    name: 'sqlite-append-batch10',
    warmup: true,
    description: '10-event appends to 100 existing streams with the exact expected version, 5 rounds',
    unit: 'events/s',
    subjects: [
      {
        name: 'factline',
        trial: factlineTrial(
          async (store) => {
            for (let round = 0; round < 5; round++) {
              for (let s = 0; s < 100; s++) {
                const events = Array.from({ length: 10 }, (_, i) => ({ type: 'ItemAdded', data: orderData(i) }));
                await store.append(`cart-${s}`, events, { expectedVersion: 1 + round * 10 });
              }
            }
            return 5000;
          },
          async (store) => {
            for (let s = 0; s < 100; s++) await store.append(`cart-${s}`, [{ type: 'CartOpened', data: {} }]);
          },
        ),
      },
      rawTrial(
        (db) => {
          const { many } = rawInserter(db);
          for (let round = 0; round < 5; round++) {
            for (let s = 0; s < 100; s++) many(`cart-${s}`, 2 + round * 10, 10, JSON.stringify(orderData(s)));
          }
          return 5000;
        },
        (db) => {
          const { one } = rawInserter(db);
          for (let s = 0; s < 100; s++) one(`cart-${s}`, 1, '{}');
        },
      ),
      emmettSubject((p, dir) => p.emmettAppendBatch10(dir, 100, 2)),
    ],
  },
  {
    name: 'sqlite-append-concurrent16',
    warmup: true,
    description: `16 async writers in one process, ${PER_WRITER} single-event appends each to their own stream (raw: one INSERT per transaction, sequential)`,
    unit: 'events/s',
    subjects: [
      (() => {
        let failures = 0;
        return {
          name: 'factline',
          trial: factlineTrial(
            async (store) => {
              failures = 0;
              await Promise.all(
                Array.from({ length: 16 }, async (_, w) => {
                  for (let i = 0; i < PER_WRITER; i++) {
                    await store
                      .append(`writer-${w}`, [{ type: 'OrderPlaced', data: orderData(i) }], { expectedVersion: i })
                      .catch(() => failures++);
                  }
                }),
              );
              return 16 * PER_WRITER - failures;
            },
            undefined,
            () => ({ failures }),
          ),
        };
      })(),
      rawTrial((db) => {
        const { one } = rawInserter(db);
        for (let i = 0; i < 16 * PER_WRITER; i++) one(`order-${i}`, 1, JSON.stringify(orderData(i)));
        return 16 * PER_WRITER;
      }),
      emmettSubject((p, dir) => p.emmettConcurrent16(dir, 10), 1),
    ],
  },
  {
    name: 'sqlite-append-hot16',
    warmup: true,
    description:
      '16 writers on 8 hot streams through handleCommand (read, decide, append, retry on conflict), 50 commands each',
    unit: 'events/s',
    subjects: [
      (() => {
        let retries = 0;
        let failures = 0;
        return {
          name: 'factline',
          trial: factlineTrial(
            async (store) => {
              retries = 0;
              failures = 0;
              await Promise.all(
                Array.from({ length: 16 }, async (_, w) => {
                  for (let i = 0; i < 50; i++) {
                    await handleCommand(store, `hot-${w % 8}`, { by: w }, counter, { maxAttempts: 100 })
                      .then((r) => {
                        retries += r.attempts - 1;
                      })
                      .catch(() => {
                        failures++;
                      });
                  }
                }),
              );
              return 16 * 50 - failures;
            },
            undefined,
            () => ({ retries, failures }),
          ),
        };
      })(),
      emmettSubject((p, dir) => p.emmettHot16(dir, 5), 1),
    ],
  },
  {
    name: 'sqlite-read-stream',
    warmup: true,
    description: 'reading one 1,000-event stream, 50 times',
    unit: 'events/s',
    subjects: [
      {
        name: 'factline',
        trial: factlineTrial(
          async (store) => {
            let n = 0;
            for (let i = 0; i < 50; i++) n += (await store.readStream('order-1')).events.length;
            return n;
          },
          async (store) => {
            for (let i = 0; i < 10; i++) {
              await store.append(
                'order-1',
                Array.from({ length: 100 }, (_, j) => ({ type: 'ItemAdded', data: orderData(j) })),
              );
            }
          },
        ),
      },
      rawTrial(
        (db) => {
          const read = db.prepare('SELECT * FROM events WHERE stream_id = ? ORDER BY version');
          let n = 0;
          for (let i = 0; i < 50; i++) n += read.all('order-1').length;
          return n;
        },
        (db) => {
          const { many } = rawInserter(db);
          for (let i = 0; i < 10; i++) many('order-1', 1 + i * 100, 100, JSON.stringify(orderData(i)));
        },
      ),
      emmettSubject((p, dir) => p.emmettReadStream(dir, 10)),
    ],
  },
];
