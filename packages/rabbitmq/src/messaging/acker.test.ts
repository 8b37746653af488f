import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { createAcker } from './acker.ts';

/** A channel that records what it was told, and a flush run by hand (one "turn of the event loop"). */
function setup() {
  const sent: string[] = [];
  let pending: (() => void) | undefined;
  const channel = {
    ack: (raw: ConsumeMessage, multiple?: boolean) => {
      sent.push(`ack ${raw.fields.deliveryTag}${multiple ? ' multiple' : ''}`);
    },
    nack: (raw: ConsumeMessage, _multiple?: boolean, requeue?: boolean) => {
      sent.push(`nack ${raw.fields.deliveryTag}${requeue ? ' requeue' : ''}`);
    },
  };
  const acker = createAcker(channel, (flush) => {
    pending = flush;
  });
  const turn = () => {
    const flush = pending;
    pending = undefined;
    flush?.();
  };
  const deliver = (...tags: number[]) =>
    tags.map((tag) => {
      const raw = { fields: { deliveryTag: tag } } as ConsumeMessage;
      acker.delivered(raw);
      return raw;
    });
  return { acker, sent, turn, deliver };
}

describe('createAcker', () => {
  it('acks the deliveries settled in one turn with one multiple ack when nothing older is unsettled', () => {
    const { acker, sent, turn, deliver } = setup();
    const raws = deliver(1, 2, 3, 4);
    for (const raw of [raws[2], raws[0], raws[1]]) acker.ack(raw as ConsumeMessage);
    assert.deepEqual(sent, [], 'nothing goes out before the flush');
    turn();
    assert.deepEqual(sent, ['ack 3 multiple']);
  });

  it('never covers an unsettled delivery: acks above the oldest unsettled one go one by one', () => {
    const { acker, sent, turn, deliver } = setup();
    const [one, two, three, four, five] = deliver(1, 2, 3, 4, 5) as ConsumeMessage[];
    acker.ack(one as ConsumeMessage);
    acker.ack(two as ConsumeMessage);
    acker.ack(four as ConsumeMessage);
    acker.ack(five as ConsumeMessage);
    turn();
    assert.deepEqual(sent, ['ack 2 multiple', 'ack 4', 'ack 5'], '3 is still in a handler');
    acker.ack(three as ConsumeMessage);
    turn();
    assert.deepEqual(sent.slice(3), ['ack 3 multiple']);
  });

  it('a nacked delivery no longer holds the multiple ack back, and is never acked', () => {
    const { acker, sent, turn, deliver } = setup();
    const [one, two, three] = deliver(1, 2, 3) as ConsumeMessage[];
    acker.nack(one as ConsumeMessage, false);
    acker.ack(two as ConsumeMessage);
    acker.ack(three as ConsumeMessage);
    acker.ack(three as ConsumeMessage);
    acker.nack(three as ConsumeMessage, true);
    turn();
    assert.deepEqual(sent, ['nack 1', 'ack 3 multiple'], 'a second ack or a late nack of 3 sends nothing');
  });

  it('counts the unsettled deliveries, those delivered uncounted left out', () => {
    const { acker, deliver } = setup();
    const [one, two, three] = deliver(1, 2, 3) as ConsumeMessage[];
    const dead = { fields: { deliveryTag: 4 } } as ConsumeMessage;
    acker.delivered(dead, false);
    assert.equal(acker.outstanding(), 3);
    acker.ack(one as ConsumeMessage);
    acker.nack(two as ConsumeMessage, true);
    acker.ack(dead);
    assert.equal(acker.outstanding(), 1, 'settled once asked for, before the flush');
    acker.close();
    assert.equal(acker.outstanding(), 0, 'the broker took the rest back with the channel');
    acker.ack(three as ConsumeMessage);
    assert.equal(acker.outstanding(), 0);
  });

  it('flush sends what waits at once; after close nothing is sent, and an ack says so', () => {
    const { acker, sent, turn, deliver } = setup();
    const [one, two] = deliver(1, 2) as ConsumeMessage[];
    assert.equal(acker.ack(one as ConsumeMessage), true);
    acker.flush();
    assert.deepEqual(sent, ['ack 1 multiple']);
    assert.equal(acker.ack(one as ConsumeMessage), true, 'acked already: a second ack is no failure');
    acker.ack(two as ConsumeMessage);
    acker.close();
    turn();
    assert.equal(acker.ack(two as ConsumeMessage), false, 'after close an ack tells it cannot be sent');
    acker.nack(two as ConsumeMessage, true);
    assert.deepEqual(sent, ['ack 1 multiple'], 'the broker took 2 back with the channel');
  });

  it('a channel that throws (closed under it) stops the acker instead of throwing into the pipeline', () => {
    const sent: number[] = [];
    const acker = createAcker(
      {
        ack: (raw) => {
          sent.push(raw.fields.deliveryTag);
          throw new Error('Channel closed');
        },
        nack: () => undefined,
      },
      (flush) => flush(),
    );
    const raw = (tag: number) => ({ fields: { deliveryTag: tag } }) as ConsumeMessage;
    acker.delivered(raw(1));
    acker.delivered(raw(2));
    assert.doesNotThrow(() => acker.ack(raw(1)));
    acker.ack(raw(2));
    assert.deepEqual(sent, [1]);
  });

  it('by default flushes once the microtasks that asked for acks have run, before the next turn of the event loop', async () => {
    const sent: string[] = [];
    const acker = createAcker({
      ack: (raw, multiple) => void sent.push(`ack ${raw.fields.deliveryTag}${multiple ? ' multiple' : ''}`),
      nack: () => undefined,
    });
    const raws = [1, 2, 3].map((tag) => ({ fields: { deliveryTag: tag } }) as ConsumeMessage);
    for (const raw of raws) acker.delivered(raw);
    const nextTurn = new Promise<string[]>((resolve) => setImmediate(() => resolve([...sent])));
    // As one group commit's runs do: each asks for its ack a few awaits after the commit settled them.
    await Promise.all(
      raws.map(async (raw, i) => {
        for (let hop = 0; hop < 3 + i; hop++) await Promise.resolve();
        acker.ack(raw);
      }),
    );
    assert.deepEqual(sent, [], 'not while the microtasks still run');
    assert.deepEqual(await nextTurn, ['ack 3 multiple'], 'one multiple ack, before the next turn');
  });
});
