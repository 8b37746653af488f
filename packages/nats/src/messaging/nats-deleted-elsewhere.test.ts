import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, NoSubscriptionError } from '@factline/core';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { showLogOnFailure, startPrivateServer } from '../fixtures/private-server.ts';
import { natsUnavailable, natsUrl, testApplication } from '../fixtures/server.ts';
import type { NatsTransportOptions } from '../options.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

const skip = await natsUnavailable();
const job = (n: number) => createMessage({ type: 'Job', key: `j${n}`, data: { n } });

/**
 * Transports of one application of their own (one partition), as processes of it, and a manager to look on
 * (or delete with, as an operator). `tearDown` closes what it opened and removes the application.
 */
async function setUp(label: string, url = natsUrl, auth: { user?: string; pass?: string } = {}) {
  const application = testApplication(label);
  const nc = await connect({ servers: url, timeout: 3000, reconnect: false, ...auth });
  const jsm = await jetstreamManager(nc);
  const close = () => nc.close();
  const opened: NatsTransport[] = [];
  return {
    application,
    jsm,
    async open(options: Partial<NatsTransportOptions> = {}) {
      const transport = await getNatsTransport({
        url: auth.user ? url.replace('nats://', `nats://${auth.user}:${auth.pass}@`) : url,
        application,
        partitions: 1,
        claimTtlMs: 600,
        onError: () => undefined,
        ...options,
      });
      opened.push(transport);
      return transport;
    },
    async tearDown() {
      await Promise.all(opened.map((transport) => transport.close()));
      for (const name of [application, `KV_${application}_claims`, `KV_${application}_partitions`]) {
        await jsm.streams.delete(name).catch(() => undefined);
      }
      await close();
    },
  };
}

describe('nats: the stream deleted and made again by another process', { skip, timeout: 60_000 }, () => {
  it('a publish with requireSubscription counts on no consumer seen in the deleted stream: NoSubscriptionError', async () => {
    const t = await setUp('elsewhere_required');
    try {
      // Another process declared the group once; this one saw its consumer with a publish that required it.
      const declaring = await t.open();
      await declaring.declareSubscription('jobs', 'worker');
      await declaring.close();
      const publisher = await t.open();
      const other = await t.open();
      await publisher.publish('jobs', [job(1)], { requireSubscription: true });

      // Deleted, and made again first by a process that declares nothing for the topic: no consumer of it.
      await t.jsm.streams.delete(t.application);
      await other.publish('other', [job(2)]);

      await assert.rejects(
        publisher.publish('jobs', [job(3)], { requireSubscription: true }),
        (error: unknown) => error instanceof NoSubscriptionError,
        'stored where no consumer takes it, the message would be dropped and the call resolved',
      );
    } finally {
      await t.tearDown();
    }
  });
});

describe('nats: a publish with requireSubscription, a consumer deleted at the server', {
  skip,
  timeout: 60_000,
}, () => {
  it('the next publish reads the consumers again: NoSubscriptionError when none of the topic is left', async () => {
    const t = await setUp('elsewhere_consumer');
    try {
      const transport = await t.open();
      await transport.declareSubscription('jobs', 'worker');
      await transport.publish('jobs', [job(1)], { requireSubscription: true });
      await t.jsm.consumers.delete(t.application, 'jobs~~worker~~0');
      await assert.rejects(
        transport.publish('jobs', [job(2)], { requireSubscription: true }),
        (error: unknown) => error instanceof NoSubscriptionError,
      );
    } finally {
      await t.tearDown();
    }
  });
});

// A server whose user may not subscribe to the JetStream advisories.
const restricted = skip
  ? { reason: skip }
  : await startPrivateServer({
      jetstream: true,
      user: 'app',
      pass: 'secret',
      config: `authorization { users = [ { user: "app", password: "secret", permissions: { publish: ">", subscribe: { allow: ">", deny: "$JS.EVENT.>" } } } ] }`,
    });
showLogOnFailure(restricted);
after(async () => {
  if (!('reason' in restricted)) await restricted.stop();
});

describe('nats: a server refusing the stream advisories', {
  skip: 'reason' in restricted && restricted.reason,
  timeout: 60_000,
}, () => {
  it('is told once (topology); a publish with requireSubscription reads the consumers every time', async () => {
    if ('reason' in restricted) return;
    const t = await setUp('refused_advisories', restricted.url, { user: 'app', pass: 'secret' });
    const told: string[] = [];
    try {
      const transport = await t.open({ onError: (error, { stage }) => told.push(`${stage}: ${String(error)}`) });
      assert.equal(told.length, 1, told.join('\n'));
      assert.match(told[0] ?? '', /^topology: .*refused the subscriptions to the advisories/);
      await transport.declareSubscription('jobs', 'worker');
      await transport.publish('jobs', [job(1)], { requireSubscription: true });
      await t.jsm.consumers.delete(t.application, 'jobs~~worker~~0');
      await assert.rejects(
        transport.publish('jobs', [job(2)], { requireSubscription: true }),
        (error: unknown) => error instanceof NoSubscriptionError,
      );
    } finally {
      await t.tearDown();
    }
  });
});
