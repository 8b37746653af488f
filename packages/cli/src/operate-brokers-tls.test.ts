import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMessage, type DeadLetterStore, type Message, type Transport } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { getNatsTransport } from '@factline/nats';
import { getRabbitTransport } from '@factline/rabbitmq';
import { getSqliteDeadLetterStore, getSqliteEventStore, openSqliteDatabase } from '@factline/sqlite';
import type { Database } from 'better-sqlite3';
import { startPrivateServer } from '../../nats/src/fixtures/private-server.ts';
import { startPrivateNode } from '../../rabbitmq/src/fixtures/private-node.ts';
import { testApplication } from '../../rabbitmq/src/fixtures/server.ts';
import { assertOneLine } from './fixtures/assert-output.ts';
import { deadLetterRecord } from './fixtures/dead-letter.ts';
import { runFactline } from './fixtures/run-factline.ts';

// `factline dlq redrive` through a broker that serves TLS and verifies clients (a private RabbitMQ node, a
// private nats-server, with certificates made for them): the FACTLINE_AMQP_TLS_* and FACTLINE_NATS_TLS_*
// variables name the PEM files.

type Certificates = { ca: string; cert: string; key: string };

/** A broker over TLS: its URL, a URL of the other scheme, its certificates, how to open its transport. */
interface TlsBroker {
  name: 'RabbitMQ' | 'NATS';
  prefix: 'FACTLINE_AMQP_TLS_' | 'FACTLINE_NATS_TLS_';
  start(): Promise<
    { url: string; plainUrl: string; certificates: Certificates; stop(): Promise<void> } | { reason: string }
  >;
  open(url: string, application: string, tls: Certificates): Promise<Transport>;
  /** The codes of a server certificate from an unknown CA, and the scheme a TLS URL needs. */
  untrusted: RegExp;
  scheme: string;
}

const brokers: TlsBroker[] = [
  {
    name: 'RabbitMQ',
    prefix: 'FACTLINE_AMQP_TLS_',
    async start() {
      const node = await startPrivateNode({ tls: 'verify-clients' });
      if ('reason' in node) return node;
      return { ...node, url: node.url, certificates: node.certificates as Certificates };
    },
    open: (url, application, tls) => getRabbitTransport({ url, application, tls, partitions: 2 }),
    untrusted: /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
    scheme: 'an amqps://',
  },
  {
    name: 'NATS',
    prefix: 'FACTLINE_NATS_TLS_',
    async start() {
      const server = await startPrivateServer({ jetstream: true, tls: 'verify-clients' });
      if ('reason' in server) return server;
      // A URL the variables do not go with (refused before anything connects).
      return {
        ...server,
        url: server.url,
        plainUrl: server.url.replace('tls:', 'nats:'),
        certificates: server.certificates as Certificates,
      };
    },
    open: (url, application, tls) => getNatsTransport({ url, application, tls, partitions: 2 }),
    untrusted: /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN/,
    scheme: 'a tls://',
  },
];

for (const broker of brokers) {
  const started = await broker.start();
  const skip = 'reason' in started ? `no private ${broker.name} over TLS: ${started.reason}` : false;
  if (skip) console.log(`# skipped: ${skip}`);

  describe(`factline dlq redrive through a ${broker.name} that serves TLS`, { skip }, () => {
    const application = testApplication('cli_tls');
    const dir = mkdtempSync(join(tmpdir(), 'factline-broker-tls-'));
    const file = join(dir, 'app.db');
    const message: Message = createMessage({ type: 'OrderPlaced', key: 'order-3', data: { order: 3 } });
    let server: Exclude<typeof started, { reason: string }>;
    let transport: Transport;
    let database: Database;
    let store: DeadLetterStore;
    let variables: Record<string, string>;
    const redrive = (id: string, env: Record<string, string | undefined>, url = server.url) =>
      runFactline(['dlq', 'redrive', id, '--yes', '--db', `sqlite:${file}`, '--transport', url, '--app', application], {
        env,
      });

    before(async () => {
      server = started as typeof server;
      const { ca, cert, key } = server.certificates;
      for (const [name, text] of Object.entries({ 'ca.pem': ca, 'client.pem': cert, 'client.key': key })) {
        writeFileSync(join(dir, name), text);
      }
      variables = {
        [`${broker.prefix}CA`]: join(dir, 'ca.pem'),
        [`${broker.prefix}CERT`]: join(dir, 'client.pem'),
        [`${broker.prefix}KEY`]: join(dir, 'client.key'),
      };
      transport = await broker.open(server.url, application, { ca, cert, key });
      await transport.declareSubscription('orders', 'billing');
      await getSqliteEventStore({ path: file }).close();
      database = openSqliteDatabase(file);
      store = getSqliteDeadLetterStore({ database });
      await store.add({ ...deadLetterRecord('billing-record'), message });
      await store.add(deadLetterRecord('second-record'));
    });

    after(async () => {
      await transport?.close();
      database?.close();
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it(`with ${broker.prefix}CA, _CERT and _KEY the message goes back to its group over TLS`, async () => {
      const billing = transport.subscribe('orders', 'billing');
      try {
        const run = await redrive('billing-record', variables);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stdout.trim(), '1 dead letter redriven');
        let got: Message | undefined;
        const signal = new AbortController().signal;
        await waitUntil(async () => {
          const [delivery] = await billing.receive(1, 200, signal);
          if (delivery) {
            got = delivery.message;
            await delivery.ack();
          }
          return got !== undefined;
        }, 'the redriven message at billing');
        assert.equal(got?.id, message.id);
        assert.equal((await store.get('billing-record'))?.state, 'redriven');
      } finally {
        await billing.close();
      }
    });

    it('a handshake that fails is one line naming the variable that fixes it; the record stays dead', async () => {
      const noCa = await redrive('second-record', {});
      assert.equal(noCa.code, 2);
      assertOneLine(
        noCa.stderr,
        new RegExp(
          `^factline: the TLS handshake with ${broker.name} at .*127\\.0\\.0\\.1:\\d+ failed \\((${broker.untrusted.source}): .*\\): set ${broker.prefix}CA to the file of the CA that signs its certificate$`,
        ),
      );
      const noClient = await redrive('second-record', { [`${broker.prefix}CA`]: variables[`${broker.prefix}CA`] });
      assert.equal(noClient.code, 2);
      assertOneLine(
        noClient.stderr,
        new RegExp(
          `^factline: the TLS handshake with ${broker.name} at .* failed \\(ERR_SSL_\\w+_ALERT_\\w+: .*\\): set ${broker.prefix}CERT and ${broker.prefix}KEY to a client certificate the server accepts$`,
        ),
      );
      assert.equal((await store.get('second-record'))?.state, 'dead');
    });

    it('the variables with a URL that does not ask for TLS, or naming a file that cannot be read, are refused before anything connects', async () => {
      const plain = await redrive('second-record', variables, server.plainUrl);
      assert.equal(plain.code, 2);
      assertOneLine(
        plain.stderr,
        new RegExp(
          `^factline: ${broker.prefix}CA, ${broker.prefix}CERT, ${broker.prefix}KEY set, but \\S+ is not ${broker.scheme} URL$`,
        ),
      );
      const missing = await redrive('second-record', {
        ...variables,
        [`${broker.prefix}CA`]: join(dir, 'nothing.pem'),
      });
      assert.equal(missing.code, 2);
      assertOneLine(missing.stderr, new RegExp(`^factline: ${broker.prefix}CA: cannot read '.*nothing\\.pem': ENOENT`));
      assert.equal((await store.get('second-record'))?.state, 'dead');
    });
  });
}
