import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { natsUnavailable, natsUrl, removeStreams, testApplication, useManager } from '../fixtures/server.ts';
import { topologyNames } from '../topology.ts';
import { getNatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const application = testApplication('recreate');
const never = new AbortController().signal;

describe('nats: the server objects, made again when deleted and kept as asked', { skip }, () => {
  const manager = useManager(application);

  const consumerName = topologyNames(application).consumer('jobs', 'worker', 0);
  const exists = async () =>
    manager()
      .consumers.info(application, consumerName)
      .then(
        () => true,
        () => false,
      );

  it('a consumer deleted at the server is made again by a running subscription, and by a declaration, never trusted from memory', async () => {
    const told: string[] = [];
    const transport = await getNatsTransport({
      url: natsUrl,
      application,
      partitions: 1,
      claimTtlMs: 600,
      onError: (error, { stage }) => told.push(`${stage}: ${String(error)}`),
    });
    try {
      await transport.declareSubscription('jobs', 'worker');
      const subscription = transport.subscribe('jobs', 'worker');
      await transport.publish('jobs', [createMessage({ type: 'Job', key: 'j', data: { n: 1 } })]);
      const [first] = await subscription.receive(1, 10_000, never);
      await first?.ack();

      // Deleted by hand (or lost with the server's state): the reader's next pull finds it missing.
      await manager().consumers.delete(application, consumerName);
      await waitUntil(exists, 'the consumer made again by the reader', 20_000);
      await transport.publish('jobs', [createMessage({ type: 'Job', key: 'j', data: { n: 2 } })]);
      const [second] = await subscription.receive(1, 10_000, never);
      assert.deepEqual(second?.message.data, { n: 2 });
      await second?.ack();
      await subscription.close();

      // With no reader running, a declaration makes it again before it resolves.
      await manager().consumers.delete(application, consumerName);
      await transport.declareSubscription('jobs', 'worker');
      assert.equal(await exists(), true, 'declareSubscription resolved with the consumer there');
    } finally {
      await transport.close();
    }
  });

  it("a longer duplicateWindowMs raises the stream's duplicate window; a shorter one never lowers it", async () => {
    const own = testApplication('window');
    const windowOf = async () => ((await manager().streams.info(own)).config.duplicate_window ?? 0) / 1_000_000;
    try {
      for (const [asked, expected] of [
        [120_000, 120_000],
        [600_000, 600_000],
        [60_000, 600_000],
      ] as const) {
        const transport = await getNatsTransport({ url: natsUrl, application: own, duplicateWindowMs: asked });
        await transport.close();
        assert.equal(await windowOf(), expected, `asked ${asked} ms`);
      }
    } finally {
      await removeStreams([own]);
    }
  });
});
