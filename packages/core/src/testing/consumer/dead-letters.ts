import assert from 'node:assert/strict';
import { NonRetryableError } from '../../errors/index.ts';
import { type DeadLetter, getInMemoryDeadLetterStore } from '../../messaging/consumer-ports.ts';
import { createMessage, type Message } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { waitUntil } from '../wait-until.ts';
import type { ConsumerConformanceCase } from './context.ts';

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

      // A consumer that died between recording and acking records the same failure again: one record still.
      await store.add({ ...(records[1] as DeadLetter), id: `${consumer}-again` });
      assert.equal(await store.get(`${consumer}-again`), undefined);
      assert.deepEqual(await store.get(`${consumer}-1`), records[1]);

      const redriven = { ...(records[1] as DeadLetter), state: 'redriven' as const, redrives: [new Date(base + 99)] };
      assert.equal(await store.update(redriven), true, 'written');
      assert.deepEqual(await store.get(redriven.id), redriven);
      assert.deepEqual(ids(await store.list({ consumer, state: 'redriven' })), [redriven.id]);
      assert.equal((await store.list({ consumer })).length, 5);
      // Written from the record as read before: it is no longer that record (a second redrive, a discard).
      assert.equal(await store.update({ ...(records[1] as DeadLetter), state: 'discarded' }), false, 'not written');
      assert.deepEqual(await store.get(redriven.id), redriven);
      // Once the record is no longer live, the message may be dead-lettered again.
      await store.add({ ...(records[1] as DeadLetter), id: `${consumer}-later` });
      assert.ok(await store.get(`${consumer}-later`));

      // The message of a live record fails again (as after a redrive not yet marked): the record takes the new
      // failure, keeping its id and history, and an update from the record as read before writes nothing.
      const again = {
        ...(records[2] as DeadLetter),
        id: `${consumer}-2-again`,
        error: { type: 'TypeError', message: 'failed once more' },
        attempts: 1,
        firstFailureAt: new Date(base + 50_000),
        lastFailureAt: new Date(base + 50_000),
        deadLetteredAt: new Date(base + 50_000),
      };
      await store.add(again);
      const refreshed = { ...again, id: `${consumer}-2`, redrives: [] };
      assert.deepEqual(await store.get(`${consumer}-2`), refreshed, 'the live record with the new failure');
      assert.equal(await store.get(`${consumer}-2-again`), undefined, 'no second record');
      assert.equal(
        await store.update({ ...(records[2] as DeadLetter), state: 'redriven', redrives: [new Date(base + 60_000)] }),
        false,
        'a redrive of the record as read before writes nothing',
      );
      assert.deepEqual(await store.get(`${consumer}-2`), refreshed);
      assert.deepEqual(ids(await store.list({ consumer, error: 'once more' })), [`${consumer}-2`]);

      // A redrive's claim put back (its delivery failed): written only while the stored record is still the claim.
      const third = records[3] as DeadLetter;
      const claimed = { ...third, state: 'redriven' as const, redrives: [new Date(base + 70_000)] };
      assert.equal(await store.update(claimed), true, 'claimed');
      assert.equal(await store.update(third), false, 'not dead any more: an update from dead writes nothing');
      assert.equal(await store.update(third, { ...claimed, redrives: [] }), false, 'not as read: nothing written');
      assert.equal(await store.update(third, claimed), true, 'put back');
      assert.deepEqual(await store.get(third.id), third, 'dead as it was');
      assert.deepEqual(ids(await store.list({ consumer, error: 'number 3' })), [third.id], 'listed as dead again');
      // Not while another record of its message is live: that one holds the message.
      const fourth = records[4] as DeadLetter;
      const claimedFourth = { ...fourth, state: 'redriven' as const, redrives: [new Date(base + 80_000)] };
      assert.equal(await store.update(claimedFourth), true, 'claimed');
      await store.add({ ...fourth, id: `${consumer}-4-again`, deadLetteredAt: new Date(base + 90_000) });
      assert.equal(await store.update(fourth, claimedFourth), false, 'another record of the message is live');
      assert.deepEqual(await store.get(fourth.id), claimedFourth, 'left as the claim');
      assert.ok(await store.get(`${consumer}-4-again`), 'the live record kept');
    },
  },
  {
    name: "a failure's text holding a NUL or a lone surrogate is kept with a NUL as U+2400 (␀) and a lone surrogate as U+FFFD",
    async run(c) {
      const store = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const consumer = uniqueCategory('dlq-nul');
      const at = new Date(Date.UTC(2026, 0, 1));
      const message = createMessage({ type: 'FileUploaded', data: { n: 1 }, key: 'file-1' });
      const record: DeadLetter = {
        id: `${consumer}-1`,
        consumer,
        topic: c.topic,
        message,
        error: {
          type: 'Bad\u0000Name',
          message: 'unexpected byte \u0000 in \ud800 header',
          stack: 'at parse (\u0000)',
        },
        reason: 'not \udc00 retryable \u0000',
        attempts: 1,
        firstFailureAt: at,
        lastFailureAt: at,
        deadLetteredAt: at,
        redrives: [],
        state: 'dead',
      };
      const kept: DeadLetter = {
        ...record,
        error: {
          type: 'Bad\u2400Name',
          message: 'unexpected byte \u2400 in \ufffd header',
          stack: 'at parse (\u2400)',
        },
        reason: 'not \ufffd retryable \u2400',
      };
      await store.add(record);
      assert.deepEqual(await store.get(record.id), kept, 'the record, its failure text marked');
      assert.deepEqual(await store.list({ consumer }), [kept]);
      assert.deepEqual(
        (await store.list({ consumer, error: 'byte \u2400' })).map((r) => r.id),
        [record.id],
        'found by the marked text',
      );
      // A new failure of the live record, and an update (a redrive), with such text too.
      const again = { ...record, id: `${consumer}-2`, error: { type: 'Error', message: 'again \u0000' } };
      await store.add({ ...again, deadLetteredAt: new Date(+at + 1) });
      const refreshed = {
        ...kept,
        error: { type: 'Error', message: 'again \u2400' },
        deadLetteredAt: new Date(+at + 1),
      };
      assert.deepEqual(await store.get(record.id), refreshed, 'refreshed with the new failure, marked');
      const redriven = { ...refreshed, error: { type: 'Error', message: 'again \u0000' }, state: 'redriven' as const };
      assert.equal(await store.update({ ...redriven, redrives: [at] }), true, 'written');
      assert.deepEqual(await store.get(record.id), { ...refreshed, state: 'redriven', redrives: [at] });
    },
  },
  {
    name: 'a handler failing with a NUL in its error message is dead-lettered, the NUL kept as U+2400 (␀)',
    async run(c) {
      const deadLetters = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const consumer = c.consumer({
        name: uniqueCategory('uploads'),
        deadLetters,
        handler: () => {
          throw new NonRetryableError('unexpected byte \u0000 in the upload');
        },
      });
      await consumer.start();
      await c.environment.transport.publish(c.topic, [
        createMessage({ type: 'FileUploaded', data: { n: 1 }, key: 'file-2' }),
      ]);
      await waitUntil(() => consumer.stats().deadLettered === 1, 'the dead letter');
      const [record, ...others] = await consumer.deadLetters.list();
      assert.equal(others.length, 0);
      assert.equal(record?.error.message, 'unexpected byte \u2400 in the upload');
      assert.ok(record?.error.stack?.includes('unexpected byte \u2400 in the upload'), 'the stack too');
    },
  },
  {
    name: 'the dead-letter store keeps one live record per consumer, topic and message: one message of a group on two topics is two records',
    async run(c) {
      const store = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const consumer = uniqueCategory('audit');
      const eu = `${c.topic}-eu`;
      const at = new Date(Date.UTC(2026, 0, 1));
      const message = createMessage({ type: 'OrderPlaced', data: { n: 1 }, key: 'order-1' });
      const record = (id: string, topic: string, error: string): DeadLetter => ({
        id,
        consumer,
        topic,
        message,
        error: { type: 'Error', message: error },
        reason: 'not retryable',
        attempts: 1,
        firstFailureAt: at,
        lastFailureAt: at,
        deadLetteredAt: at,
        redrives: [],
        state: 'dead',
      });
      const home = record(`${consumer}-home`, c.topic, 'home failed');
      const abroad = record(`${consumer}-eu`, eu, 'eu failed');
      await store.add(home);
      await store.add(abroad);
      assert.deepEqual(await store.get(home.id), home, 'the first topic keeps its record');
      assert.deepEqual(await store.get(abroad.id), abroad);
      // A new failure on one topic refreshes that topic's record only.
      await store.add({ ...record(`${consumer}-eu-again`, eu, 'eu failed again'), deadLetteredAt: new Date(+at + 1) });
      assert.deepEqual(
        (await store.list({ consumer })).map((r) => [r.id, r.topic, r.error.message]),
        [
          [home.id, c.topic, 'home failed'],
          [abroad.id, eu, 'eu failed again'],
        ],
      );
    },
  },
  {
    name: "a consumer's dead letters are its group's on its topic: another topic's record of the group is not listed, shown, redriven or discarded",
    async run(c) {
      // One store for both consumers, as a durable transport's default store is (the in-memory default is one each).
      const deadLetters = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const group = uniqueCategory('audit');
      const seen: string[] = [];
      let fixed = false;
      const orders = c.consumer({ name: group, deadLetters, handler: (m) => void seen.push(`orders ${m.type}`) });
      const payments = c.consumer({
        name: group,
        topic: `${c.topic}-payments`,
        deadLetters,
        handler: (m) => {
          seen.push(`payments ${m.type}`);
          if (!fixed) throw new NonRetryableError('card expired');
        },
      });
      await orders.start();
      await payments.start();
      await c.environment.transport.publish(`${c.topic}-payments`, [
        createMessage({ type: 'PaymentTaken', data: { n: 1 }, key: 'order-5' }),
      ]);
      await waitUntil(() => payments.stats().deadLettered === 1, 'the dead letter');
      const [record, ...others] = await payments.deadLetters.list();
      assert.equal(others.length, 0);
      assert.equal(record?.topic, `${c.topic}-payments`);
      const id = record?.id as string;

      // As an id the consumer does not know: not found, nothing redriven or discarded.
      assert.deepEqual(await orders.deadLetters.list(), [], 'not listed');
      assert.deepEqual(await orders.deadLetters.list({ topic: `${c.topic}-payments` }), [], 'not listed by topic');
      assert.equal(await orders.deadLetters.show(id), undefined, 'not shown');
      assert.equal(await orders.deadLetters.redrive({}), 0, 'not redriven by filter');
      assert.equal(await orders.deadLetters.redrive(id), 0, 'not redriven by id');
      assert.equal(await orders.deadLetters.discard([id]), 0, 'not discarded by id');
      assert.equal(await orders.deadLetters.discard({}), 0, 'not discarded by filter');
      assert.equal((await payments.deadLetters.show(id))?.state, 'dead', 'still dead, for its own consumer');

      fixed = true;
      assert.equal(await payments.deadLetters.redrive(id), 1);
      await waitUntil(() => payments.stats().handled === 1, 'the redriven payment');
      assert.deepEqual(seen, ['payments PaymentTaken', 'payments PaymentTaken'], 'the orders handler got nothing');
    },
  },
  {
    name: 'a group dead-lettering one message on two topics keeps a record for each, each consumer redriving its own to its topic',
    async run(c) {
      const deadLetters = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const group = uniqueCategory('audit');
      const eu = `${c.topic}-eu`;
      const handled: string[] = [];
      let fixed = false;
      const handlerFor = (topic: string) => (m: Message) => {
        if (!fixed) throw new NonRetryableError(`failed on ${topic}`);
        handled.push(`${topic} ${m.id}`);
      };
      // An inbox each: a group's shared inbox applies a message id once, whichever topic brought it.
      const home = c.consumer({ name: group, deadLetters, inbox: undefined, handler: handlerFor(c.topic) });
      const abroad = c.consumer({ name: group, topic: eu, deadLetters, inbox: undefined, handler: handlerFor(eu) });
      await home.start();
      await abroad.start();
      const message = createMessage({ type: 'OrderPlaced', data: { n: 1 }, key: 'order-6' });
      await c.environment.transport.publish(c.topic, [message]);
      await c.environment.transport.publish(eu, [message]);
      await waitUntil(
        () => home.stats().deadLettered === 1 && abroad.stats().deadLettered === 1,
        'the dead letter on each topic',
      );
      const [own, ...more] = await home.deadLetters.list();
      const [theirs, ...moreEu] = await abroad.deadLetters.list();
      assert.deepEqual(
        [own?.topic, own?.error.message, more.length, theirs?.topic, theirs?.error.message, moreEu.length],
        [c.topic, `failed on ${c.topic}`, 0, eu, `failed on ${eu}`, 0],
        'a live record on each topic',
      );

      fixed = true;
      assert.equal(await home.deadLetters.redrive({}), 1);
      assert.equal(await abroad.deadLetters.redrive({}), 1);
      await waitUntil(() => home.stats().handled === 1 && abroad.stats().handled === 1, 'both redriven');
      assert.deepEqual(handled.sort(), [`${c.topic} ${message.id}`, `${eu} ${message.id}`].sort());
    },
  },
  {
    name: "a redrive to a group no process has subscribed yet delivers it once the group's consumer starts",
    async run(c) {
      // A store kept apart from the transport (shared by services, or the transport's tables made again): it holds
      // a dead letter of a group whose subscription the transport has never seen.
      const store = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const name = uniqueCategory('late');
      const message = createMessage({ type: 'RefundRequested', data: { n: 1 }, key: 'order-7' });
      const at = new Date(Date.UTC(2026, 0, 1));
      const id = `${name}-1`;
      await store.add({
        id,
        consumer: name,
        topic: c.topic,
        message,
        error: { type: 'Error', message: 'card expired' },
        reason: 'not retryable',
        attempts: 1,
        firstFailureAt: at,
        lastFailureAt: at,
        deadLetteredAt: at,
        redrives: [],
        state: 'dead',
      });
      const handled: string[] = [];
      const consumer = c.consumer({ name, deadLetters: store, handler: (m) => void handled.push(m.id) });
      assert.equal(await consumer.deadLetters.redrive(id), 1, 'redriven before start');
      assert.equal((await store.get(id))?.state, 'redriven');
      await consumer.start();
      await waitUntil(() => consumer.stats().handled === 1, 'the redriven message handled');
      assert.deepEqual(handled, [message.id]);
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
