import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BACKLOG_READS, groupBacklog, type HeldCount } from './backlog.ts';

/**
 * A group reader's counts and a broker's answers over several reads: `arrivals[i]` deliveries come in
 * while read i is asked (each of them ready in that read's answer, then held here), `ready[i]` is the answer.
 */
function scene(ready: number[], arrivals: number[], heldAtStart: number) {
  let held = heldAtStart;
  let arrived = 0;
  let reads = 0;
  const reader: HeldCount = { waiting: () => held, arrived: () => arrived };
  const readReady = async () => {
    const answer = ready[reads] ?? assert.fail(`read ${reads + 1} not expected`);
    const coming = arrivals[reads] ?? 0;
    reads += 1;
    held += coming;
    arrived += coming;
    return answer;
  };
  return { reader, readReady, reads: () => reads };
}

describe('rabbitmq: a group backlog read beside deliveries arriving', () => {
  it('sums the ready messages and what this process holds when nothing arrives meanwhile, in one read', async () => {
    const s = scene([4], [0], 2);
    assert.equal(await groupBacklog(s.readReady, s.reader), 6);
    assert.equal(s.reads(), 1);
  });

  it('reads again when deliveries arrived during the read: 3 messages never count as 6', async () => {
    // The broker counted the 3 ready, and they were held here by the time its answer came.
    const s = scene([3, 0], [3, 0], 0);
    assert.equal(await groupBacklog(s.readReady, s.reader), 3);
    assert.equal(s.reads(), 2);
  });

  it('settles after a bounded number of reads while deliveries keep arriving, never above the truth, never below what it holds', async () => {
    const ready = Array.from({ length: BACKLOG_READS }, () => 10);
    const arrivals = Array.from({ length: BACKLOG_READS }, () => 2);
    const s = scene(ready, arrivals, 1);
    // Last read: 10 ready told (counting the 2 on their way), 1 + 3 × 2 = 7 held: the truth is 10 + 7 − 2 = 15.
    assert.equal(await groupBacklog(s.readReady, s.reader), 15);
    assert.equal(s.reads(), BACKLOG_READS);
    const low = scene([0, 0, 0], [1, 1, 1], 0);
    assert.equal(await groupBacklog(low.readReady, low.reader), 3, 'what this process holds, at least');
  });

  it('takes the ready messages alone where no reader of the group runs in this process', async () => {
    assert.equal(await groupBacklog(async () => 5, undefined), 5);
  });

  it('lets a failed read reject', async () => {
    await assert.rejects(
      groupBacklog(async () => {
        throw new Error('channel closed');
      }, undefined),
      /channel closed/,
    );
  });
});
