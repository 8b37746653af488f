import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TransportError } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startPrivateServer } from '../fixtures/private-server.ts';
import { natsUnavailable, natsUrl, testApplication } from '../fixtures/server.ts';
import { createPublisher, DUE_HEADER, type Publisher } from './publish.ts';

const skip = await natsUnavailable();
const stream = testApplication('publish');
const body = (text: string) => new TextEncoder().encode(text);

describe('nats: publishing with PubAcks on an inbox subscription', { skip }, () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let publisher: Publisher;

  before(async () => {
    nc = await connect({ servers: natsUrl });
    jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: 'memory', max_msg_size: 1024 });
    publisher = createPublisher(nc, 1000);
  });

  after(async () => {
    await jsm?.streams.delete(stream).catch(() => undefined);
    await nc?.close();
  });

  it('resolves every message with its PubAck in publish order; a repeated Nats-Msg-Id is a duplicate, stored once', async () => {
    const acks = await publisher.publishAll([
      { subject: `${stream}.a`, data: body('one'), messageId: 'm-1' },
      { subject: `${stream}.a`, data: body('two'), messageId: 'm-2', dueAt: 1234 },
      { subject: `${stream}.b`, data: body('three') },
    ]);
    assert.deepEqual(
      acks.map((a) => [a.stream, a.duplicate]),
      [
        [stream, false],
        [stream, false],
        [stream, false],
      ],
    );
    assert.ok((acks[0]?.seq ?? 0) < (acks[1]?.seq ?? 0) && (acks[1]?.seq ?? 0) < (acks[2]?.seq ?? 0));
    const again = await publisher.publishAll([{ subject: `${stream}.a`, data: body('one'), messageId: 'm-1' }]);
    assert.equal(again[0]?.duplicate, true);
    assert.equal(again[0]?.seq, acks[0]?.seq);
    const info = await jsm.streams.info(stream);
    assert.equal(info.state.messages, 3);
    // The headers a message carries: its id, and its due time when it has one.
    const second = await jsm.streams.getMessage(stream, { seq: acks[1]?.seq as number });
    assert.equal(second?.header.get('Nats-Msg-Id'), 'm-2');
    assert.equal(second?.header.get(DUE_HEADER), '1234');
    const third = await jsm.streams.getMessage(stream, { seq: acks[2]?.seq as number });
    assert.equal(third?.header?.get('Nats-Msg-Id') ?? '', '');
  });

  it('a subject no stream takes: a retryable TransportError before the deadline (no responders)', async () => {
    const started = Date.now();
    const error = await publisher.publishAll([{ subject: `${stream}_none.x`, data: body('lost') }]).then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof TransportError);
    assert.equal(error.retryable, true);
    assert.match(error.message, /did not acknowledge the publish to .*no responders/);
    assert.ok(Date.now() - started < 900, 'failed on the status, not at the deadline');
  });

  it('an error answer from the stream (a message over its max_msg_size) rejects the call; the others of it are stored', async () => {
    const error = await publisher
      .publishAll([
        { subject: `${stream}.c`, data: body('small') },
        { subject: `${stream}.c`, data: new Uint8Array(4096) },
      ])
      .then(
        () => assert.fail('resolved'),
        (e: unknown) => e,
      );
    assert.ok(error instanceof TransportError);
    assert.equal((error.cause as Error).name, 'JetStreamApiError');
    const info = await jsm.streams.info(stream, { subjects_filter: `${stream}.c` });
    assert.equal(info.state.subjects?.[`${stream}.c`], 1);
  });

  it("an item with a key goes once the item of its key before it is stored: a refused one has none of its key's later ones stored", async () => {
    const chain = await publisher.publishAll(
      Array.from({ length: 5 }, (_, i) => ({ subject: `${stream}.e`, data: body(`e${i}`), key: 'k' })),
    );
    const seqs = chain.map((ack) => ack.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      "a key's items stored in call order",
    );
    const error = await publisher
      .publishAll([
        { subject: `${stream}.f`, data: body('a1'), key: 'a' },
        { subject: `${stream}.f`, data: new Uint8Array(4096), key: 'a' },
        { subject: `${stream}.f`, data: body('b1'), key: 'b' },
        { subject: `${stream}.f`, data: body('a3'), key: 'a' },
      ])
      .then(
        () => assert.fail('resolved'),
        (e: unknown) => e,
      );
    assert.ok(error instanceof TransportError);
    assert.equal((error.cause as Error).name, 'JetStreamApiError');
    const info = await jsm.streams.info(stream, { subjects_filter: `${stream}.f` });
    const stored: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const message = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
      if (message?.subject === `${stream}.f`) stored.push(message.string());
    }
    assert.deepEqual(stored, ['a1', 'b1'], "b's item, first of its key, went; a's after the refused one did not");
  });

  it('no answer at all (a plain subscriber takes the subject, no stream): rejects at the deadline with a TimeoutError cause', async () => {
    const silent = nc.subscribe('factline_publish_test_silent.>');
    try {
      const started = Date.now();
      const error = await publisher
        .publishAll([
          { subject: 'factline_publish_test_silent.a', data: body('1') },
          { subject: 'factline_publish_test_silent.b', data: body('2') },
        ])
        .then(
          () => assert.fail('resolved'),
          (e: unknown) => e,
        );
      const waited = Date.now() - started;
      assert.ok(error instanceof TransportError);
      assert.equal(error.retryable, true);
      assert.equal((error.cause as Error).name, 'TimeoutError');
      assert.ok(waited >= 950 && waited < 5000, `rejected at the deadline (${waited} ms)`);
    } finally {
      silent.unsubscribe();
    }
  });

  it('calls waiting when the publisher closes reject at once; later calls reject, not retryable', async () => {
    const own = await connect({ servers: natsUrl });
    const silent = own.subscribe('factline_publish_test_closing.>');
    const closing = createPublisher(own, 60_000);
    try {
      const waiting = closing.publishAll([{ subject: 'factline_publish_test_closing.a', data: body('1') }]);
      await own.flush();
      closing.close();
      await assert.rejects(waiting, (e: unknown) => e instanceof TransportError && e.retryable === true);
      await assert.rejects(
        closing.publishAll([{ subject: `${stream}.d`, data: body('2') }]),
        (e: unknown) => e instanceof TransportError && e.retryable === false,
      );
    } finally {
      silent.unsubscribe();
      await own.close();
    }
  });
});

const server = await startPrivateServer({ jetstream: true });
const noPrivateServer = 'reason' in server ? `no private nats-server: ${server.reason}` : false;

after(async () => {
  if (!('reason' in server)) await server.stop();
});

describe('nats: publishing across a server restart (private server)', { skip: noPrivateServer }, () => {
  it('a publish while the server is down rejects at its deadline; after the reconnect the same publisher is answered again', async () => {
    if ('reason' in server) return;
    const nc = await connect({ servers: server.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'restart', subjects: ['restart.>'], storage: 'file' });
      const publisher = createPublisher(nc, 1000);
      assert.equal(
        (await publisher.publishAll([{ subject: 'restart.a', data: body('1'), messageId: 'r-1' }])).length,
        1,
      );
      await server.stopServer();
      const started = Date.now();
      const error = await publisher.publishAll([{ subject: 'restart.a', data: body('2'), messageId: 'r-2' }]).then(
        () => assert.fail('resolved'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof TransportError && error.retryable, 'a retryable TransportError');
      assert.equal((error.cause as Error).name, 'TimeoutError');
      assert.ok(Date.now() - started < 5000, 'rejected at the deadline');
      await server.startServer();
      // The outcome of r-2 was unknown: publishing it again is what a relay does; the stream holds it once.
      let acks: Awaited<ReturnType<typeof publisher.publishAll>> = [];
      await waitUntil(
        async () => {
          acks = await publisher
            .publishAll([{ subject: 'restart.a', data: body('2'), messageId: 'r-2' }])
            .catch(() => []);
          return acks.length === 1;
        },
        'a publish answered after the reconnect',
        30_000,
      );
      const info = await jsm.streams.info('restart');
      assert.equal(info.state.messages, 2);
    } finally {
      await nc.close();
    }
  });
});
