import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testEventStoreConformance } from '@factline/core/testing';
import { getSqliteEventStore } from '../index.ts';

const dir = mkdtempSync(join(tmpdir(), 'factline-sqlite-'));
let files = 0;

testEventStoreConformance({
  name: 'sqlite (file, synchronous=full)',
  createStore: (options) => getSqliteEventStore({ path: join(dir, `store-${++files}.db`), ...options }),
  teardown: () => rmSync(dir, { recursive: true, force: true }),
});

testEventStoreConformance({
  name: 'sqlite (:memory:)',
  createStore: (options) => getSqliteEventStore({ path: ':memory:', ...options }),
});
