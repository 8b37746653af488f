import type { LeasedProjectionStatus, Projection, ProjectionRunner, ProjectionRunnerOptions } from '@factline/core';
import { assertIntegerOption, createLeasedProjections, projectionLeaseName } from '@factline/core/adapter';
import type pg from 'pg';
import { dedicatedConnectionSettings } from '../connection-settings.ts';
import { advisoryLockKey, createPostgresLeases } from '../lease.ts';
import { checkPostgresProjectionsOptions, pickBackendOptions } from '../options.ts';
import type { PostgresEventStore } from '../store/postgres-event-store.ts';
import {
  getPostgresProjectionBackend,
  type PostgresProjectionBackend,
  type PostgresProjectionBackendOptions,
} from './postgres-projection-backend.ts';

export {
  getPostgresProjectionBackend,
  type PostgresProjectionBackend,
  type PostgresProjectionBackendOptions,
} from './postgres-projection-backend.ts';
export { readLiveProjectionVersion } from './projection-tables.ts';

export interface PostgresProjectionsOptions extends ProjectionRunnerOptions, PostgresProjectionBackendOptions {
  /**
   * How often a process standing by tries to take a projection's lease, and
   * how often the holder checks its lease connection, in ms. Default 1000.
   */
  leaseCheckMs?: number;
  /** `application_name` of the lease connection. Default `'factline-lease'`. */
  leaseApplicationName?: string;
  /** Called when this process takes (`'held'`) or gives up or loses (`'standby'`) a projection's lease. */
  onLeaseChange?: (projection: string, lease: 'held' | 'standby') => void;
}

/** A projection's status, with whether this process holds its lease. */
export type PostgresProjectionStatus = LeasedProjectionStatus;

export interface PostgresProjectionRunner extends ProjectionRunner {
  status(): PostgresProjectionStatus[];
  status(name: string): PostgresProjectionStatus;
  /** The backend the projections run on (its LISTEN connection is closed by `stop()`). */
  readonly backend: PostgresProjectionBackend;
}

/**
 * The 64-bit advisory lock key of a projection version's lease: a hash of the
 * schema, the projection's name and (above 1) its version, so versions run
 * side by side.
 */
export function projectionLeaseKey(schema: string, projection: string, version = 1): string {
  return projectionLeaseKeyOf(schema, projectionLeaseName(projection, version));
}

/** The advisory lock key of a lease named by `projectionLeaseName` (`projection:<version key>`). */
function projectionLeaseKeyOf(schema: string, leaseName: string): string {
  const versionKey = leaseName.slice('projection:'.length);
  return advisoryLockKey(`factline-projection-lease\0${schema}\0${versionKey}`);
}

/**
 * Starts async projections on a PostgreSQL store, for several processes at
 * once: each projection runs in only one process at a time, the one holding
 * its lease, a session-level advisory lock (`pg_try_advisory_lock`) taken on a
 * dedicated lease connection. The other processes stand by (status `'stopped'`,
 * `lease: 'standby'`) and try to take the lease every `leaseCheckMs`. When the
 * holder stops, crashes or loses its connection, the server releases the lock
 * and a stand-by takes over from the saved checkpoint. Even if two processes
 * ever ran a projection at once (a lost connection not noticed yet), the
 * checkpoint check of every commit keeps each event applied exactly once.
 *
 * @example
 * const projections = await startPostgresProjections(store, [orderSummaries]);
 * const { position } = await store.append('order-1', [...]);
 * await projections.waitFor('order_summaries', position); // read-your-writes, in any process
 * await projections.stop();
 */
export async function startPostgresProjections(
  store: PostgresEventStore,
  projections: readonly Projection<pg.PoolClient>[],
  options: PostgresProjectionsOptions = {},
): Promise<PostgresProjectionRunner> {
  checkPostgresProjectionsOptions(options);
  const runner = createPostgresProjections(store, projections, options);
  await runner.start();
  return runner;
}

function createPostgresProjections(
  store: PostgresEventStore,
  projections: readonly Projection<pg.PoolClient>[],
  options: PostgresProjectionsOptions,
): PostgresProjectionRunner {
  const leaseCheckMs = assertIntegerOption(options.leaseCheckMs, 'leaseCheckMs', 1) ?? 1000;
  const backend = getPostgresProjectionBackend(store, pickBackendOptions(options));
  const leases = createPostgresLeases({
    connection: dedicatedConnectionSettings(
      options.connection ?? (store.pool.options as pg.ClientConfig),
      options.leaseApplicationName ?? 'factline-lease',
    ),
    keyOf: (name) => projectionLeaseKeyOf(store.schema, name),
    checkMs: leaseCheckMs,
  });
  const runner = createLeasedProjections({
    backend,
    projections,
    options,
    leases,
    checkMs: leaseCheckMs,
    headPosition: () => store.headPosition(),
    onLeaseChange: options.onLeaseChange,
    async close() {
      await leases.close();
      await backend.close();
    },
  });
  return Object.assign(runner, { backend }) as PostgresProjectionRunner;
}
