import assert from 'node:assert/strict';
import { NonRetryableError } from '../../errors/index.ts';
import { type DeadLetter, type DeadLetterStore, getInMemoryDeadLetterStore } from '../../messaging/consumer-ports.ts';
import { createMessage } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { waitUntil } from '../wait-until.ts';
import type { ConsumerConformanceCase } from './context.ts';
import { deadRecord, spyRedeliveries } from './dead-letter-fixtures.ts';

/** Redrives racing what else changes a record: a discard, a failed redelivery or mark, a message failing again. */
export const deadLetterRedriveCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'a redriven message failing again is one live dead letter with the new failure, the redrive kept in the records',
    async run(c) {
      let runs = 0;
      const consumer = c.consumer({
        name: uniqueCategory('refunds'),
        handler: () => {
          runs += 1;
          throw new NonRetryableError(`card expired (run ${runs})`);
        },
      });
      await consumer.start();
      const message = createMessage({ type: 'RefundRequested', data: { n: 1 }, key: 'order-4' });
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
      const [record] = await consumer.deadLetters.list();
      assert.equal(await consumer.deadLetters.redrive(record?.id as string), 1);
      await waitUntil(() => consumer.stats().deadLettered === 2, 'the redriven message dead-lettered again');
      const [live, ...others] = await consumer.deadLetters.list();
      assert.equal(others.length, 0, 'one live dead letter');
      assert.deepEqual([live?.message.id, live?.error.message], [message.id, 'card expired (run 2)']);
      // Marked before the message failed again (a new live record beside the redriven one), or after (the first
      // record dead again with the new failure): either way the redrive is in the records.
      const first = await consumer.deadLetters.show(record?.id as string);
      const kept = live?.id === record?.id ? [live] : [first, live];
      assert.deepEqual(
        kept.map((r) => r?.redrives.length ?? 0).reduce((a, b) => a + b, 0),
        1,
        'the redrive recorded once',
      );
      if (live?.id !== record?.id) assert.equal(first?.state, 'redriven');
    },
  },
  {
    name: 'a record discarded between its selection and its redrive is neither delivered nor counted',
    async run(c) {
      const store = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const name = uniqueCategory('refunds');
      const records = [1, 2, 3].map((i) => deadRecord(name, c.topic, i));
      for (const r of records) await store.add(r);
      const [first, second, third] = records as [DeadLetter, DeadLetter, DeadLetter];
      // An operator discards a record right after the redrive read it (the read and the discard interleave).
      let discardAfterRead: DeadLetter | undefined;
      const discardNow = async () => {
        const record = discardAfterRead;
        discardAfterRead = undefined;
        if (record) assert.equal(await store.update({ ...record, state: 'discarded' }), true, 'discarded');
      };
      const racing: DeadLetterStore = {
        add: (record) => store.add(record),
        async list(filter) {
          const found = await store.list(filter);
          await discardNow();
          return found;
        },
        async get(id) {
          const found = await store.get(id);
          await discardNow();
          return found;
        },
        update: (record, read) => store.update(record, read),
      };
      const { transport, sent } = spyRedeliveries(c.environment.transport);
      const consumer = c.consumer({ name, transport, deadLetters: racing, handler: () => undefined });

      discardAfterRead = first;
      assert.equal(await consumer.deadLetters.redrive({}), 2, 'only the records still dead are counted');
      assert.deepEqual(sent, [second.message.id, third.message.id], 'the discarded message is not sent');
      assert.equal((await store.get(first.id))?.state, 'discarded', 'the discard stands');
      assert.equal((await store.get(second.id))?.state, 'redriven');

      const fourth = deadRecord(name, c.topic, 4);
      await store.add(fourth);
      discardAfterRead = fourth;
      assert.equal(await consumer.deadLetters.redrive([fourth.id]), 0, 'by id: nothing counted');
      assert.deepEqual(sent, [second.message.id, third.message.id], 'nor sent');
      assert.equal((await store.get(fourth.id))?.state, 'discarded');
    },
  },
  {
    name: 'a redrive whose redelivery fails leaves its record dead as it was, and rejects; the next redrive sends it',
    async run(c) {
      const store = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const name = uniqueCategory('refunds');
      const record = deadRecord(name, c.topic, 1);
      await store.add(record);
      let refuse = true;
      const { transport, sent } = spyRedeliveries(c.environment.transport, () => {
        if (refuse) throw new Error('the broker refused the redelivery');
      });
      const consumer = c.consumer({ name, transport, deadLetters: store, handler: () => undefined });
      await assert.rejects(consumer.deadLetters.redrive(record.id), /the broker refused the redelivery/);
      assert.deepEqual(await store.get(record.id), record, 'dead again, no redrive recorded');
      assert.deepEqual(await consumer.deadLetters.list(), [record], 'listed as dead');

      refuse = false;
      assert.equal(await consumer.deadLetters.redrive(record.id), 1);
      assert.deepEqual(sent, [record.message.id]);
      const redriven = await store.get(record.id);
      assert.deepEqual([redriven?.state, redriven?.redrives.length], ['redriven', 1]);
    },
  },
  {
    name: 'a redrive whose mark fails after its message went leaves the record dead: nothing is marked redriven undelivered',
    async run(c) {
      const store = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const name = uniqueCategory('refunds');
      const record = deadRecord(name, c.topic, 1);
      await store.add(record);
      let failMark = true;
      const failing: DeadLetterStore = {
        add: (r) => store.add(r),
        list: (filter) => store.list(filter),
        get: (id) => store.get(id),
        async update(r, read) {
          if (failMark && r.state === 'redriven') throw new Error('the store went away');
          return store.update(r, read);
        },
      };
      const { transport, sent } = spyRedeliveries(c.environment.transport);
      const consumer = c.consumer({ name, transport, deadLetters: failing, handler: () => undefined });
      await assert.rejects(consumer.deadLetters.redrive(record.id), /the store went away/);
      assert.deepEqual(sent, [record.message.id], 'the message went');
      assert.equal((await store.get(record.id))?.state, 'dead', 'still dead: a redrive can send it again');
      failMark = false;
      assert.equal(await consumer.deadLetters.redrive(record.id), 1);
      assert.deepEqual(sent, [record.message.id, record.message.id], 'sent again (at least once)');
      assert.equal((await store.get(record.id))?.state, 'redriven');
    },
  },
];
