import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testSchemaStoreConformance } from '@factline/core/testing';
import { getSqliteEventStore } from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-sqlite-schemas-'));
let files = 0;

// Two connections to one file: the raw one writes old events, the other reads them through the registry.
testSchemaStoreConformance({
  name: 'sqlite',
  openStores: (schemas) => {
    const path = join(dir, `store-${++files}.db`);
    const raw = getSqliteEventStore({ path });
    return { raw, store: getSqliteEventStore({ path, schemas }) };
  },
  teardown: () => rmSync(dir, { recursive: true, force: true }),
});
