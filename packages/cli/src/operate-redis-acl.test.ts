import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessage, type DeadLetter } from '@factline/core';
import { waitUntil } from '@factline/core/testing';
import { createClient } from 'redis';
import { startPrivateServer } from '../../redis/src/fixtures/private-server.ts';
import { testApplication } from '../../redis/src/fixtures/server.ts';
import { type BillingApplication, startBillingApplication } from './fixtures/redis-billing.ts';
import { runFactline } from './fixtures/run-factline.ts';

// `factline dlq` as an application's least-privilege ACL user (a private server): keys `<app>:*` only, no
// command of `@dangerous` (INFO among them, which the CLI reads to refuse a server it cannot use).
const server = await startPrivateServer();
const skip = 'reason' in server ? server.reason : false;
let billing: BillingApplication | undefined;
after(async () => {
  await billing?.close();
  if (!('reason' in server)) await server.stop();
});

describe('factline dlq as an ACL user limited to the application keys, without @dangerous', { skip }, () => {
  it('lists, redrives and discards the dead letters', async () => {
    if ('reason' in server) return;
    const application = testApplication('cli-acl');
    const admin = createClient({ url: server.url });
    admin.on('error', () => undefined);
    await admin.connect();
    const user = [
      'ops',
      'on',
      '>ops-secret',
      'resetkeys',
      `~${application}:*`,
      'resetchannels',
      '+@all',
      '-@dangerous',
    ];
    await admin.sendCommand(['ACL', 'SETUSER', ...user]);
    await admin.close();
    const url = `redis://ops:ops-secret@127.0.0.1:${server.port}`;
    const poison = createMessage({ type: 'OrderPlaced', key: 'order-1', data: {} });
    const other = createMessage({ type: 'OrderCancelled', key: 'order-2', data: {} });
    billing = await startBillingApplication(application, { refused: [poison, other], accepted: [] }, { url });
    const factline = (...args: string[]) => runFactline([...args, '--db', url, '--app', application]);
    const listed = await factline('dlq', 'ls', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    const records = JSON.parse(listed.stdout) as DeadLetter[];
    assert.deepEqual(records.map((r) => r.message.id).sort(), [poison.id, other.id].sort());
    const record = (id: string) => records.find((r) => r.message.id === id) as DeadLetter;
    billing.refused.delete(poison.id);
    const redriven = await factline('dlq', 'redrive', record(poison.id).id, '--yes');
    assert.equal(redriven.code, 0, redriven.stderr);
    assert.equal(redriven.stdout.trim(), '1 dead letter redriven');
    await waitUntil(() => billing?.handled.includes(poison.id), 'the redriven message handled by billing');
    const discarded = await factline('dlq', 'discard', record(other.id).id, '--yes');
    assert.equal(discarded.code, 0, discarded.stderr);
    assert.equal(discarded.stdout.trim(), '1 dead letter discarded');
    const kept = JSON.parse((await factline('dlq', 'ls', '--state', 'discarded', '--json')).stdout) as DeadLetter[];
    assert.deepEqual(
      kept.map((r) => r.message.id),
      [other.id],
    );
  });
});
