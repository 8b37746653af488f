import assert from 'node:assert/strict';
import { NonRetryableError } from '../../errors/index.ts';
import { type DeadLetter, getInMemoryDeadLetterStore } from '../../messaging/consumer-ports.ts';
import { createMessage, type Message } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { waitUntil } from '../wait-until.ts';
import type { ConsumerConformanceCase } from './context.ts';

/** Dead letters: the store's queries, and where dead letters live when the consumer is given no store. */
export const deadLetterCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'the dead-letter store lists by consumer, topic, type, error and time; one live record per message',
    async run(c) {
      const store = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const consumer = uniqueCategory('dlq');
      const other = uniqueCategory('dlq-other');
      const base = Date.UTC(2026, 0, 1);
      const record = (i: number, overrides: Partial<DeadLetter> = {}): DeadLetter => ({
        id: `${consumer}-${i}`,
        consumer,
        topic: c.topic,
        message: createMessage({ type: i % 2 ? 'Odd' : 'Even', data: { i }, key: `k-${i}` }),
        error: { type: i % 3 ? 'TypeError' : 'RangeError', message: `failure number ${i}` },
        reason: 'failed 4 times',
        attempts: 4,
        firstFailureAt: new Date(base + i * 1000 - 500),
        lastFailureAt: new Date(base + i * 1000),
        deadLetteredAt: new Date(base + i * 1000),
        redrives: [],
        state: 'dead',
        ...overrides,
      });
      const records = Array.from({ length: 6 }, (_, i) => record(i));
      for (const r of records) await store.add(r);
      await store.add({ ...record(9), consumer: other, id: `${other}-9` });
      const ids = (list: DeadLetter[]) => list.map((r) => r.id);
      assert.deepEqual(ids(await store.list({ consumer })), ids(records), 'in dead-letter order');
      assert.deepEqual(await store.list({ consumer }), records, 'whole records back');
      assert.deepEqual(ids(await store.list({ consumer, type: 'Odd' })), ids(records.filter((_, i) => i % 2)));
      assert.deepEqual(ids(await store.list({ consumer, error: 'RangeError' })), [`${consumer}-0`, `${consumer}-3`]);
      assert.deepEqual(ids(await store.list({ consumer, error: 'number 4' })), [`${consumer}-4`]);
      assert.deepEqual(
        ids(await store.list({ consumer, since: new Date(base + 2000), until: new Date(base + 3000) })),
        [`${consumer}-2`, `${consumer}-3`],
      );
      assert.deepEqual(ids(await store.list({ topic: c.topic, consumer: other })), [`${other}-9`]);
      assert.deepEqual(await store.list({ consumer, topic: `${c.topic}-none` }), []);

      // A consumer that died between recording and acking records the same failure again: ignored.
      await store.add({ ...(records[1] as DeadLetter), id: `${consumer}-again` });
      assert.equal(await store.get(`${consumer}-again`), undefined);

      const redriven = { ...(records[1] as DeadLetter), state: 'redriven' as const, redrives: [new Date(base + 99)] };
      await store.update(redriven);
      assert.deepEqual(await store.get(redriven.id), redriven);
      assert.deepEqual(ids(await store.list({ consumer, state: 'redriven' })), [redriven.id]);
      assert.equal((await store.list({ consumer })).length, 5);
      // Once the record is no longer live, the message may be dead-lettered again.
      await store.add({ ...(records[1] as DeadLetter), id: `${consumer}-later` });
      assert.ok(await store.get(`${consumer}-later`));
    },
  },
  {
    name: 'given no dead-letter store, dead letters survive a restart on a durable transport: a new consumer lists and redrives them',
    requires: ['durable'],
    async run(c) {
      const name = uniqueCategory('refunds');
      let fixed = false;
      const handlerOn = (environment: typeof c.environment) => (m: Message, tx: unknown) => {
        if (!fixed) throw new NonRetryableError('card expired');
        return environment.writeEffect(tx, name, m.id);
      };
      const first = c.consumer({ name, deadLetters: undefined, handler: handlerOn(c.environment) });
      await first.start();
      const message = createMessage({ type: 'RefundRequested', data: { n: 1 }, key: 'order-3' });
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => first.stats().deadLettered === 1, 'the dead letter');
      await first.stop();
      await c.environment.close();

      const environment = await c.reopen();
      fixed = true;
      const second = c.consumer({
        name,
        transport: environment.transport,
        inbox: environment.inbox,
        deadLetters: undefined,
        handler: handlerOn(environment),
      });
      const [record, ...others] = await second.deadLetters.list();
      assert.equal(others.length, 0);
      assert.deepEqual(record?.message, message, 'the dead letter, listed before start, after the restart');
      assert.equal(record?.error.message, 'card expired');
      await second.start();
      assert.equal(await second.deadLetters.redrive(record?.id as string), 1);
      await waitUntil(() => second.stats().handled === 1, 'the redriven message');
      assert.deepEqual(await environment.effects(name), [message.id]);
      assert.equal((await second.deadLetters.show(record?.id as string))?.state, 'redriven');
    },
  },
  {
    name: 'given no dead-letter store, a consumer on a transport that is not durable keeps its dead letters in memory',
    requires: ['volatile'],
    async run(c) {
      const consumer = c.consumer({
        name: uniqueCategory('refunds'),
        deadLetters: undefined,
        handler: () => {
          throw new NonRetryableError('card expired');
        },
      });
      await consumer.start();
      const message = createMessage({ type: 'RefundRequested', data: { n: 1 }, key: 'order-3' });
      await c.environment.transport.publish(c.topic, [message]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
      await consumer.stop();
      // Nothing outlives the process here: the consumer keeps them in memory, listed after it stopped.
      const [record, ...others] = await consumer.deadLetters.list();
      assert.equal(others.length, 0);
      assert.deepEqual(record?.message, message);
    },
  },
];
