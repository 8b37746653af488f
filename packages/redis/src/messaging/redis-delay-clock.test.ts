import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { settlesWithin, waitUntil } from '@factline/core/testing';
import { redisUrl } from '../fixtures/server.ts';
import { sharedRedis } from '../fixtures/shared-server.ts';
import { getRedisTransport, type RedisTransport } from './redis-transport.ts';

const { skip, application } = await sharedRedis('delay-clock');
const child = new URL('./fixtures/skewed-delay-child.ts', import.meta.url).pathname;
/** The delay every case asks for, and how much sooner a message may come (the server's clock rounds to 1 ms). */
const DELAY_MS = 3000;
const SLACK_MS = 50;

/** `skewed-delay-child.ts` in `mode`, its clock `skewMs` off: what it printed, and its end. */
function skewedChild(skewMs: number, mode: 'mover' | 'publish' | 'release') {
  const other = spawn(
    process.execPath,
    ['--conditions=factline-source', '--import', 'tsx', child, redisUrl, application, String(skewMs), mode],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const printed: Record<string, number> = {};
  let stderr = '';
  other.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n').filter(Boolean)) Object.assign(printed, JSON.parse(line));
  });
  other.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => other.once('exit', resolve));
  return {
    printed,
    stderr: () => stderr,
    /** Ends the child (a `mover` closes when its input ends; the others end on their own) within 15 s. */
    end: async () => {
      other.stdin.end();
      const code = await settlesWithin(exited, 15_000, `the ${mode} child to end`);
      assert.equal(code, 0, `the ${mode} child failed: ${stderr}`);
    },
  };
}

/** Receives one message of `topic` for group `g` within 15 s; resolves when it came (this process's clock, ms). */
async function receivedAt(transport: RedisTransport, topic: string): Promise<number> {
  const subscription = transport.subscribe(topic, 'g');
  const signal = new AbortController().signal;
  try {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const got = await subscription.receive(1, 500, signal);
      if (got.length === 0) continue;
      const at = Date.now();
      await got[0]?.ack();
      return at;
    }
    throw new Error(`nothing came on ${topic} within 15 s`);
  } finally {
    await subscription.close();
  }
}

// Every transport of an application runs a mover of its delayed set, and any process may schedule a delay: timed
// by each process's own clock, one running ahead moved messages early, and a delay scheduled by one running behind
// was already due for the others. Scheduled and moved by Redis's clock, a delay is its length whoever's clock is off.
describe("redis: delays are timed by Redis's clock", { skip }, () => {
  it('a process whose clock runs 30 s ahead moves no delayed message early', async () => {
    const here = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    const ahead = skewedChild(30_000, 'mover');
    try {
      await here.declareSubscription('mover', 'g');
      await waitUntil(() => ahead.printed.ready !== undefined, 'the child to run its mover', 15_000);
      const arrival = receivedAt(here, 'mover');
      const publishedAt = Date.now();
      await here.publish('mover', [
        createMessage({ type: 'Later', key: 'k', data: {}, deliverAt: new Date(publishedAt + DELAY_MS) }),
      ]);
      const waited = (await arrival) - publishedAt;
      assert.ok(waited >= DELAY_MS - SLACK_MS, `came ${waited} ms after it was published, due after ${DELAY_MS}`);
    } finally {
      await ahead.end();
      await here.close();
    }
  });

  it('a message published for 3 s later by a process whose clock runs 30 s behind waits 3 s', async () => {
    const here = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    try {
      await here.declareSubscription('publisher', 'g');
      const arrival = receivedAt(here, 'publisher');
      const behind = skewedChild(-30_000, 'publish');
      await behind.end();
      const { publishingAt, publishedAt } = behind.printed as { publishingAt: number; publishedAt: number };
      assert.ok(publishedAt >= publishingAt, 'the child published');
      const waited = (await arrival) - publishingAt;
      assert.ok(waited >= DELAY_MS - SLACK_MS, `came ${waited} ms after the publish began, due after ${DELAY_MS}`);
    } finally {
      await here.close();
    }
  });

  it('a release for 3 s by a process whose clock runs 30 s behind waits 3 s', async () => {
    // This process's mover, its clock right, moves the release's copy when Redis's clock says it is due.
    const here = await getRedisTransport({ url: redisUrl, application, partitions: 1 });
    try {
      const behind = skewedChild(-30_000, 'release');
      await behind.end();
      const { releasedAt, againAt } = behind.printed as { releasedAt: number; againAt: number };
      const waited = againAt - releasedAt;
      assert.ok(waited >= DELAY_MS - SLACK_MS, `came again ${waited} ms after the release resolved`);
    } finally {
      await here.close();
    }
  });
});
