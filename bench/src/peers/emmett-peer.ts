/**
 * What the Emmett peers (emmett-sqlite.ts, emmett-postgres.ts) share: the parts of Emmett's core API
 * their trials use, typed only as far as they use them; the loading of an Emmett store package and
 * `@event-driven-io/emmett` from `bench/.peers` (never the project's own node_modules); and the event
 * and counter decider both peers' trials append.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { orderData } from '../workloads/payload.ts';

export interface EmmettEvent {
  type: string;
  data: Record<string, unknown>;
}

export interface EmmettReadEvent extends EmmettEvent {
  metadata: { streamName: string; streamPosition: bigint; globalPosition: bigint };
}

export interface AppendResult {
  nextExpectedStreamVersion: bigint;
  lastEventGlobalPosition: bigint;
  createdNewStream: boolean;
}

export interface PullingOptions {
  /** Messages read per batch (Emmett's default: 100). */
  batchSize?: number;
  /** Pause between batches while more are left, in ms (Emmett's default: 50). */
  pullingFrequencyInMs?: number;
}

/** async-retry's options, as Emmett's command handler takes them. */
export interface RetryOptions {
  retries?: number;
  minTimeout?: number;
  factor?: number;
  shouldRetryError?: (error?: unknown) => boolean;
  onRetry?: (error: unknown, attempt: number) => void;
}

export type DeciderHandle<Store, Command extends EmmettEvent, StreamEvent extends EmmettEvent> = (
  store: Store,
  id: string,
  command: Command,
) => Promise<{ newEvents: StreamEvent[]; nextExpectedStreamVersion: bigint }>;

/** `@event-driven-io/emmett`, with `Store` the store type of the peer that uses it. */
export interface EmmettCoreModule<Store> {
  DeciderCommandHandler<State, Command extends EmmettEvent, StreamEvent extends EmmettEvent>(options: {
    decide: (command: Command, state: State) => StreamEvent | StreamEvent[];
    evolve: (state: State, event: StreamEvent) => State;
    initialState: () => State;
    retry?: { onVersionConflict: true | number | RetryOptions };
  }): DeciderHandle<Store, Command, StreamEvent>;
  /** What `retry: { onVersionConflict: true }` means: 3 retries, 100 ms first wait, ×1.5 backoff. */
  CommandHandlerStreamVersionConflictRetryOptions: RetryOptions;
}

/** An Emmett store package (`adapter`) and Emmett's core, as loaded from `bench/.peers`. */
export interface EmmettPeer<Adapter, Store> {
  adapter: Adapter;
  core: EmmettCoreModule<Store>;
}

export const peersDir = fileURLToPath(new URL('../../.peers/', import.meta.url));

/** `require` as from `bench/.peers`. */
export const requirePeer = (name: string): unknown => createRequire(join(peersDir, 'package.json'))(name);

/**
 * A loader (once, then cached) of the Emmett store package `adapterPackage` (`@event-driven-io/<name>`)
 * and Emmett's core; it gives the reason instead when either is missing, does not load, or lacks
 * `factory` (the adapter's store factory) or `DeciderCommandHandler`.
 */
export function emmettPeerLoader<Adapter, Store>(
  adapterPackage: string,
  factory: keyof Adapter & string,
): () => EmmettPeer<Adapter, Store> | string {
  let loaded: EmmettPeer<Adapter, Store> | string | undefined;
  const load = (): EmmettPeer<Adapter, Store> | string => {
    if (!existsSync(join(peersDir, 'node_modules', ...adapterPackage.split('/')))) {
      return `${adapterPackage} is not installed in ${peersDir}`;
    }
    try {
      const adapter = requirePeer(adapterPackage) as Adapter;
      const core = requirePeer('@event-driven-io/emmett') as EmmettCoreModule<Store>;
      if (typeof adapter[factory] !== 'function' || typeof core.DeciderCommandHandler !== 'function') {
        return `the installed Emmett packages lack ${factory} or DeciderCommandHandler`;
      }
      return { adapter, core };
    } catch (error) {
      return `Emmett failed to load from ${peersDir}: ${(error as Error).message}`;
    }
  };
  return () => {
    loaded ??= load();
    return loaded;
  };
}

/** The event of the single-append trials: order `i`. */
export const placed = (i: number): EmmettEvent => ({ type: 'OrderPlaced', data: orderData(i) });

export type AddCommand = { type: 'Add'; data: { by: number } };
export type AddedEvent = { type: 'Added'; data: { by: number } };

/**
 * The hot-stream trials' decider through Emmett's `DeciderCommandHandler`: a counter emitting one
 * event per command, with Emmett's own retry on version conflicts (its default policy for
 * `onVersionConflict: true`); `onRetry` is called for each retry taken.
 */
export function counterHandler<Store>(
  core: EmmettCoreModule<Store>,
  onRetry: () => void,
): DeciderHandle<Store, AddCommand, AddedEvent> {
  return core.DeciderCommandHandler<number, AddCommand, AddedEvent>({
    initialState: () => 0,
    evolve: (n) => n + 1,
    decide: (command) => ({ type: 'Added', data: command.data }),
    retry: { onVersionConflict: { ...core.CommandHandlerStreamVersionConflictRetryOptions, onRetry } },
  });
}
