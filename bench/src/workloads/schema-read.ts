/**
 * `schema-readall-1m` (`npm run bench -- schema`): a full `readAll` of a SQLite log of EVENTS
 * `ItemAdded` events, all stored at schema version 1, read through three stores on the same file:
 * - `no-registry`: the store without `schemas` (no decode at all);
 * - `factline`: a registry whose `ItemAdded` is at version 1: nothing is due (the cost of the registry);
 * - `one-upcast`: a registry whose `ItemAdded` is at version 2: one upcaster step on every event.
 * The reader sums one field of every event's data so that no subject skips the payload. Each subject
 * also prints its CPU time per event (`<subject>.cpuNsPerEvent`, ns).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSchemaRegistry, defineEvent, type SchemaRegistry } from '@factline/core';
import { getSqliteEventStore } from '@factline/sqlite';
import { z } from 'zod';
import type { Subject, Workload } from '../harness.ts';
import { orderData } from './payload.ts';

const EVENTS = Number(process.env.FACTLINE_BENCH_SCHEMA_EVENTS ?? 1_000_000);
const dir = join(tmpdir(), `factline-bench-schema-${process.pid}`);
let seeded: string | undefined;

/** Removes the seeded log. */
export function removeSchemaFiles(): void {
  rmSync(dir, { recursive: true, force: true });
  seeded = undefined;
}

const item = z.object({ sku: z.string(), qty: z.number(), price: z.number() });
const itemAddedV1 = z.object({ orderId: z.string(), customerId: z.string(), total: z.number(), items: z.array(item) });

const registries: Record<'factline' | 'one-upcast', SchemaRegistry> = {
  factline: createSchemaRegistry([defineEvent({ type: 'ItemAdded', version: 1, schema: itemAddedV1 })]),
  'one-upcast': createSchemaRegistry([
    defineEvent({
      type: 'ItemAdded',
      version: 2,
      schema: itemAddedV1.extend({ currency: z.string() }),
      upcasters: { 1: (v1: z.infer<typeof itemAddedV1>) => ({ ...v1, currency: 'EUR' }) },
    }),
  ]),
};

/** The log, written once per run (1,000 events per append, over 1,000 streams) and reused. */
async function seededFile(): Promise<string> {
  if (seeded) return seeded;
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'log.db');
  const store = getSqliteEventStore({ path, synchronous: 'normal' });
  for (let i = 0; i < EVENTS / 1000; i++) {
    await store.append(
      `order-${i % 1000}`,
      Array.from({ length: 1000 }, (_, j) => ({ type: 'ItemAdded', data: orderData(j), schemaVersion: 1 })),
    );
  }
  await store.close();
  seeded = path;
  return path;
}

function readSubject(name: 'no-registry' | 'factline' | 'one-upcast'): Subject {
  return {
    name,
    trial: () => {
      let path = '';
      let cpu = 0;
      return {
        setup: async () => {
          path = await seededFile();
        },
        run: async () => {
          const schemas = name === 'no-registry' ? undefined : registries[name];
          const store = getSqliteEventStore(schemas ? { path, schemas } : { path });
          const began = process.cpuUsage();
          try {
            let count = 0;
            let sum = 0;
            for await (const event of store.readAll()) {
              sum += (event.data as { total: number }).total;
              count += 1;
            }
            if (count !== EVENTS || sum <= 0) throw new Error(`${name} read ${count} of ${EVENTS} events`);
            const used = process.cpuUsage(began);
            cpu = ((used.user + used.system) * 1000) / count;
            return count;
          } finally {
            await store.close();
          }
        },
        // CPU time per event (ns): steadier than the rate when other processes share the machine.
        extras: () => ({ cpuNsPerEvent: cpu }),
      };
    },
  };
}

export const schemaReadWorkloads: Workload[] = [
  {
    name: 'schema-readall-1m',
    warmup: true,
    repeat: 5,
    description:
      `full readAll of a ${EVENTS.toLocaleString('en')}-event SQLite log stored at version 1: no-registry = no ` +
      'schemas; factline = a registry with nothing due; one-upcast = a registry at version 2 (one upcaster per event)',
    unit: 'events/s',
    subjects: [readSubject('factline'), readSubject('no-registry'), readSubject('one-upcast')],
  },
];
