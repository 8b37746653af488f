import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { messageToJson } from '@factline/core/adapter';
import { waitUntil } from '@factline/core/testing';
import type { JetStreamClient } from '@nats-io/jetstream';
import { topologyNames } from '../topology.ts';
import { createGroupReader } from './group-reader.ts';

/**
 * A pull the server never ends and the client library never stops (no
 * expiry, no missed heartbeats): it brings nothing until `stop()`.
 */
function endlessPull() {
  let stop: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  return {
    stop: () => stop?.(),
    async *[Symbol.asyncIterator](): AsyncGenerator<never> {
      await stopped;
      // Ends at stop with nothing brought: the loop below never runs.
      yield* [];
    },
  };
}

/** A one-partition reader of orders/billing on `consumer` (the pull's source); `context` overrides the rest. */
const readerOf = (consumer: unknown, context: Partial<Parameters<typeof createGroupReader>[0]>) =>
  createGroupReader({
    names: topologyNames('reader-test'),
    topic: 'orders',
    group: 'billing',
    partitions: 1,
    prefetch: 10,
    maxDeliver: 5,
    ackWaitMs: 30_000,
    deadLetters: undefined,
    js: () => ({ consumers: { get: async () => consumer } }) as unknown as JetStreamClient,
    ensureConsumer: async () => undefined,
    pending: async () => ({ ackPending: 0, deliveredSeq: 0 }),
    report: () => undefined,
    connected: () => true,
    ...context,
  });

describe('the group reader', () => {
  it('a pull still open well past its expiry is stopped, told, and the partition pulled again behind its gate', async () => {
    let pulls = 0;
    let pendingReads = 0;
    const reported: { error: unknown; stage: string }[] = [];
    const consumer = {
      // The first pull never ends; the later ones end at once with nothing (so that stop() need not wait).
      fetch: async () => {
        pulls += 1;
        if (pulls === 1) return endlessPull();
        const done = endlessPull();
        setTimeout(done.stop, 20);
        return done;
      },
    };
    const reader = readerOf(consumer, {
      pending: async () => {
        pendingReads += 1;
        return { ackPending: 0, deliveredSeq: 0 };
      },
      report: (error, stage) => reported.push({ error, stage }),
    });
    reader.gain(0);
    try {
      // The pull expires after 1 s; 4 s past that the reader stops it.
      await waitUntil(() => reported.length >= 1, 'the overdue pull told', 8000, 20);
      const [first] = reported;
      assert.equal(first?.stage, 'consume');
      assert.match(String(first?.error), /pulling orders\/billing partition 0 failed/);
      assert.match(String((first?.error as Error | undefined)?.cause), /the pull did not end within 5000 ms/);
      const readsBefore = pendingReads;
      await waitUntil(() => pulls >= 2, 'a new pull after the stopped one', 3000, 20);
      // Messages may have been lost with the stopped pull: the gate read the consumer's pending state again.
      assert.ok(pendingReads > readsBefore, 'the partition gated again before the new pull');
    } finally {
      await reader.stop();
    }
  });
});

describe('the group reader, a partition lost while its pull loop waits on the server', () => {
  it('sends no pull for it once lost, however late the answers it waited on come', async () => {
    let pulls = 0;
    let answer: (() => void) | undefined;
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    let asked = false;
    const consumer = {
      fetch: async () => {
        pulls += 1;
        const done = endlessPull();
        setTimeout(done.stop, 20);
        return done;
      },
    };
    const reader = readerOf(consumer, {
      // As a request held across a reconnection: answered only after the partition was lost (the claim ran out).
      ensureConsumer: async () => {
        asked = true;
        await answered;
      },
    });
    reader.gain(0);
    try {
      await waitUntil(() => asked, 'the pull loop to ask for its consumer', 5000, 10);
      const losing = reader.lose(0);
      answer?.();
      await losing;
      assert.equal(pulls, 0, 'a pull was sent for a partition this process no longer holds');
    } finally {
      // Answered in any case: the loop, and so the stop, wait on it.
      answer?.();
      await reader.stop();
    }
  });
});

describe('the group reader, a partition held again while its earlier holding is given up', () => {
  it("the earlier holding's give-up naks only what it brought, never the new holding's messages", async () => {
    const names = topologyNames('reader-test');
    const settled: string[] = [];
    /** A message as a pull brings it. */
    const pulled = (seq: number, key: string) => ({
      subject: names.subject('orders', 0),
      info: { streamSequence: seq, deliveryCount: 1 },
      data: new TextEncoder().encode(messageToJson(createMessage({ type: 'T', key, data: { seq } }))),
      seq,
      headers: undefined,
      ack: () => void settled.push(`ack ${seq}`),
      nak: () => void settled.push(`nak ${seq}`),
      term: () => void settled.push(`term ${seq}`),
      working: () => undefined,
    });
    /** Pulls bringing `messages`, then staying open until stopped (`end`), as a pull waiting out its expiry does. */
    const pulls: { end: () => void }[] = [];
    const queue = [[pulled(1, 'k1')], [pulled(2, 'k2')]];
    const consumer = {
      fetch: async () => {
        const bring = queue.shift() ?? [];
        const pull = endlessPull();
        pulls.push({ end: pull.stop });
        return {
          stop: pull.stop,
          async *[Symbol.asyncIterator]() {
            yield* bring;
            yield* pull;
          },
        };
      },
    };
    const reader = readerOf(consumer, {});
    const never = new AbortController().signal;
    const seqOf = (delivery: { message: { data: unknown } } | undefined) =>
      (delivery?.message.data as { seq: number } | undefined)?.seq;
    try {
      reader.gain(0);
      const [first] = await reader.buffer.receive(1, 1, 5000, never, 30_000);
      assert.equal(seqOf(first), 1);
      // The claim is lost (a renewal answered late), then found still this process's and held again at once,
      // while the first pull stays open.
      const losing = reader.lose(0);
      reader.gain(0);
      const [second] = await reader.buffer.receive(2, 1, 5000, never, 30_000);
      assert.equal(seqOf(second), 2);
      // The earlier holding's pull ends: its give-up runs to its end.
      pulls[0]?.end();
      await losing;
      assert.deepEqual(settled, ['nak 1'], 'only the earlier holding’s message went back');
      await second?.ack();
      assert.deepEqual(settled, ['nak 1', 'ack 2']);
    } finally {
      for (const pull of pulls) pull.end();
      await reader.stop();
    }
  });
});

describe('the group reader, its consumer made again at the server unseen (the stream deleted and made again)', () => {
  it('takes the delivery numbering starting over for a new consumer: what it held is refused, the new message handed out', async () => {
    const names = topologyNames('reader-test');
    const settled: string[] = [];
    /** The consumer at the server: its delivery sequence, and what it has to deliver (naks put back). */
    let delivered = 0;
    const waiting: { seq: number; at: number }[] = [];
    const deliver = ({ seq, at }: { seq: number; at: number }) => {
      delivered += 1;
      const info = { streamSequence: seq, deliverySequence: delivered, timestampNanos: at, deliveryCount: 1 };
      return {
        subject: names.subject('orders', 0),
        info,
        data: new TextEncoder().encode(messageToJson(createMessage({ type: 'T', key: `k${at}`, data: { at } }))),
        seq,
        headers: undefined,
        ack: () => void settled.push(`ack ${seq}@${at}`),
        nak: () => {
          settled.push(`nak ${seq}@${at}`);
          waiting.push({ seq, at });
        },
        term: () => void settled.push(`term ${seq}@${at}`),
        working: () => undefined,
      };
    };
    const pulls: { end: () => void }[] = [];
    const consumer = {
      fetch: async ({ max_messages: max }: { max_messages: number }) => {
        const bring = waiting.splice(0, max).map(deliver);
        const pull = endlessPull();
        pulls.push({ end: pull.stop });
        setTimeout(pull.stop, 20);
        return {
          stop: pull.stop,
          async *[Symbol.asyncIterator]() {
            yield* bring;
            yield* pull;
          },
        };
      },
    };
    const reader = readerOf(consumer, {});
    const never = new AbortController().signal;
    const atOf = (delivery: { message: { data: unknown } } | undefined) =>
      (delivery?.message.data as { at: number } | undefined)?.at;
    try {
      waiting.push({ seq: 1, at: 100 }, { seq: 2, at: 200 });
      reader.gain(0);
      const held = [];
      while (held.length < 2) held.push(...(await reader.buffer.receive(1, 2 - held.length, 5000, never, 30_000)));
      assert.deepEqual(held.map(atOf), [100, 200]);

      // The stream deleted and made again with the consumer, unseen by this reader: it numbers from 1 again.
      delivered = 0;
      waiting.push({ seq: 1, at: 300 });
      const [next] = await reader.buffer.receive(1, 1, 5000, never, 30_000);
      assert.equal(atOf(next), 300, 'the new stream’s message handed out');
      for (const delivery of held) {
        await assert.rejects(
          delivery.ack(),
          /was deleted there/,
          'acked by its stream sequence, it would settle the new message of that number',
        );
      }
      await next?.ack();
      assert.ok(!settled.includes('ack 1@100') && !settled.includes('ack 2@200'), settled.join(', '));
      assert.equal(settled.filter((s) => s === 'ack 1@300').length, 1, settled.join(', '));
    } finally {
      for (const pull of pulls) pull.end();
      await reader.stop();
    }
  });
});

describe('the group reader, its connection closed by the client (credentials refused at a reconnection)', () => {
  it('tells the keep-alive, a delayed release and the give-back it cannot send, throwing nothing: the release is held here', async () => {
    const names = topologyNames('reader-test');
    let closed = false;
    const sent: string[] = [];
    /** As the client does on a closed connection: every ack-like signal throws at once. */
    const signal = (what: string) => () => {
      if (closed) throw new Error('closed connection');
      sent.push(what);
    };
    const raw = (seq: number) => ({
      subject: names.subject('orders', 0),
      info: { streamSequence: seq, deliverySequence: seq, timestampNanos: seq, deliveryCount: 1 },
      data: new TextEncoder().encode(messageToJson(createMessage({ type: 'T', key: `k${seq}`, data: { seq } }))),
      seq,
      headers: undefined,
      ack: signal(`ack ${seq}`),
      nak: signal(`nak ${seq}`),
      term: signal(`term ${seq}`),
      working: signal(`working ${seq}`),
    });
    const pulls: { end: () => void }[] = [];
    const queue = [[raw(1), raw(2)]];
    const consumer = {
      fetch: async () => {
        const bring = queue.shift() ?? [];
        const pull = endlessPull();
        pulls.push({ end: pull.stop });
        setTimeout(pull.stop, 20);
        return {
          stop: pull.stop,
          async *[Symbol.asyncIterator]() {
            yield* bring;
            yield* pull;
          },
        };
      },
    };
    const reported: { error: unknown; stage: string }[] = [];
    // The keep-alive runs every 333 ms.
    const reader = readerOf(consumer, { ackWaitMs: 1000, report: (error, stage) => reported.push({ error, stage }) });
    const never = new AbortController().signal;
    const told = (pattern: RegExp) => reported.filter((r) => pattern.test(String(r.error)));
    try {
      reader.gain(0);
      const held = [];
      while (held.length < 2) held.push(...(await reader.buffer.receive(1, 2 - held.length, 5000, never, 30_000)));
      await waitUntil(() => sent.includes('working 1'), 'a keep-alive sent', 3000, 20);
      closed = true;

      await waitUntil(() => told(/keep-alive/).length > 0, 'the refused keep-alive told', 3000, 20);
      const [keepAlive] = told(/keep-alive/);
      assert.equal(keepAlive?.stage, 'consume');
      assert.match(
        String(keepAlive?.error),
        /the keep-alive \(working\): 2 message\(s\) of orders\/billing could not be sent/,
      );
      assert.match(String((keepAlive?.error as Error | undefined)?.cause), /closed connection/);

      // A release for 300 ms: the nak with a delay cannot go; it is held here and handed out again when due.
      await held[0]?.release(300);
      const [again] = await reader.buffer.receive(1, 1, 5000, never, 30_000);
      assert.equal((again?.message.data as { seq: number } | undefined)?.seq, 1);
      const [delay] = told(/delayed release/);
      assert.equal(delay?.stage, 'delay');
      assert.match(String(delay?.error), /could not be sent to the server: it is held in this process until due/);

      // Given up: the naks cannot go either; told once, and the stop resolves.
      await reader.lose(0);
      const [giveBack] = told(/give-back/);
      assert.equal(giveBack?.stage, 'consume');
      assert.match(
        String(giveBack?.error),
        /the give-back \(nak\) of partition 0: 2 message\(s\) of orders\/billing could not be sent/,
      );
      assert.deepEqual(
        sent.filter((s) => !s.startsWith('working')),
        [],
        'nothing acked, naked or terminated',
      );
    } finally {
      for (const pull of pulls) pull.end();
      await reader.stop();
    }
  });
});
