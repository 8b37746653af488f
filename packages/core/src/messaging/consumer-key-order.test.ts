import assert from 'node:assert/strict';
import { it } from 'node:test';
import { StorageError } from '../errors/index.ts';
import { waitUntil } from '../testing/wait-until.ts';
import { createConsumer } from './consumer.ts';
import { getInMemoryInbox, type Inbox } from './consumer-ports.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import { createMessage } from './message.ts';

it('a message given back after a failed step (here the inbox) takes the rest of its key back with it: the key stays in order', async () => {
  const transport = getInMemoryTransport();
  const messages = [0, 1, 2].map((n) => createMessage({ type: 'Paid', data: { n }, key: 'acct-1' }));
  const marks = getInMemoryInbox();
  let failed = false;
  const inbox: Inbox = {
    ...marks,
    async has(consumer, id) {
      if (!failed && id === messages[0]?.id) {
        failed = true;
        throw new StorageError('inbox unreachable');
      }
      return marks.has(consumer, id);
    },
  };
  const applied: number[] = [];
  const errors: string[] = [];
  const consumer = createConsumer({
    name: 'ledger',
    topic: 'payments',
    transport,
    inbox,
    pollMs: 20,
    onError: (error, { stage }) => void errors.push(`${stage}: ${(error as Error).message}`),
    handler: (m) => void applied.push((m.data as { n: number }).n),
  });
  try {
    await consumer.start();
    // One publish: the three arrive in one receive, in one key lane.
    await transport.publish('payments', messages);
    await waitUntil(() => consumer.stats().handled === 3, 'the three applied', 10_000);
    assert.deepEqual(applied, [0, 1, 2], 'the later messages ran before the one given back');
    assert.deepEqual(errors, ['inbox: inbox unreachable']);
  } finally {
    await consumer.stop();
    await transport.close();
  }
});
