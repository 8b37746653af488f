// Workloads for harness.test.ts: peers that fail in each way a real one has (a thrown error, a
// crash of its process, a hang) beside subjects that work.
import { BUILT } from './code-under-test.ts';
import type { Subject, Workload } from './harness.ts';

const works = (name: string, units: number, isolate = false): Subject => ({
  name,
  isolate,
  trial: () => ({ run: () => ({ units, seconds: 1 }) }),
});

export const workloads: Workload[] = [
  {
    name: 'fixture-peers',
    description: 'subjects that work beside peers that throw, crash their process or hang',
    unit: 'events/s',
    repeat: 2,
    warmup: true,
    subjects: [
      works('factline', 300),
      works('raw', 400),
      works('isolated', 200, true),
      // Its rate tells which code its child process measures: 100 the sources, 50 the build.
      works('isolated-code', BUILT ? 50 : 100, true),
      {
        name: 'peer-throws',
        trial: () => ({
          run: () => {
            throw new Error('SQLITE_BUSY: cannot commit transaction - SQL statements in progress');
          },
        }),
      },
      {
        name: 'peer-stray-error',
        isolate: true,
        // An error thrown outside the trial's promise chain, as an unhandled 'error' event is.
        trial: () => ({
          run: () =>
            new Promise<number>(() => {
              setImmediate(() => {
                throw new Error('stray error event');
              });
            }),
        }),
      },
      {
        name: 'peer-exits',
        isolate: true,
        trial: () => ({
          run: () => {
            // As Emmett's busy guard does with an error it does not expect.
            console.error(new Error('SQLITE_BUSY: database is locked'));
            process.exit(3);
          },
        }),
      },
      {
        name: 'peer-hangs',
        isolate: true,
        timeoutMs: 3000,
        trial: () => ({
          run: () =>
            new Promise<number>(() => {
              setInterval(() => {}, 1000);
            }),
        }),
      },
    ],
  },
];
