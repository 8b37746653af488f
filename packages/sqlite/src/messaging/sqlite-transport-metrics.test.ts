import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { checkConsumerLag } from '../../../core/src/tracing/fixtures/consumer-lag.ts';
import { registerTestSdk, type TestSdk } from '../../../core/src/tracing/fixtures/otel-sdk.ts';
import { getSqliteTransport } from './sqlite-transport.ts';

let sdk: TestSdk;
before(() => {
  sdk = registerTestSdk();
});
after(() => sdk.shutdown());

test('the consumer reports its group’s backlog on the SQLite transport, read from the queue table', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factline-transport-metrics-'));
  const transport = getSqliteTransport({ path: join(dir, 'queue.db'), pollIntervalMs: 10 });
  try {
    await checkConsumerLag(sdk, transport, 'bills');
  } finally {
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
