import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport } from './redis-transport.ts';

const { skip, application } = await sharedRedis('readers-clock');
const child = new URL('./fixtures/skewed-reader-child.ts', import.meta.url).pathname;

// The readers of a group share its partitions by how many are registered in <app>:readers:<topic>:<group>. A
// reader whose clock runs behind the others' by more than leaseMs must still count as live for them (and one
// whose clock runs ahead must not drop theirs): the registrations are timed by Redis's clock.
describe('redis: readers whose clocks disagree', { skip }, () => {
  it('a reader with its clock 30 s behind gets its share: 2 partitions of 4 each', async () => {
    const here = await getRedisTransport({ url: redisUrl, application, partitions: 4, leaseMs: 1000 });
    const other = spawn(
      process.execPath,
      ['--conditions=factline-source', '--import', 'tsx', child, redisUrl, application, '-30000'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let otherHeld: number[] = [];
    let stderr = '';
    other.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) otherHeld = JSON.parse(line) as number[];
    });
    other.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise((resolve) => other.once('exit', resolve));
    try {
      here.subscribe('skew', 'billing');
      await waitUntil(() => here.heldPartitions('skew', 'billing').length === 4, 'this reader to hold all 4', 10_000);
      await waitUntil(
        () => here.heldPartitions('skew', 'billing').length === 2 && otherHeld.length === 2,
        '2 partitions each',
        15_000,
      ).catch((error: unknown) => {
        const held = JSON.stringify(here.heldPartitions('skew', 'billing'));
        throw new Error(`${(error as Error).message}: here ${held}, the other ${JSON.stringify(otherHeld)}; ${stderr}`);
      });
      assert.deepEqual(
        [...here.heldPartitions('skew', 'billing'), ...otherHeld].sort(),
        [0, 1, 2, 3],
        'each partition held once',
      );
    } finally {
      other.stdin.end();
      await settlesWithin(exited, 10_000, 'the other reader to close');
      await here.close();
    }
  });
});
