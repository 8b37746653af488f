import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deadLetterRecordId } from './dead-letter-id.ts';

const death = (count: number, time = 1_796_674_765) => ({
  count,
  reason: 'delivery_limit',
  queue: 'shop.orders.billing.0',
  time: { '!': 'timestamp', value: time },
  exchange: '',
  'routing-keys': ['shop.orders.billing.0'],
});
const delivery = (headers: Record<string, unknown>) => ({ properties: { headers } });
const queue = 'shop.orders.billing.dead';

describe('deadLetterRecordId', () => {
  it('is one UUID for one dead-lettering, however often it is handed out (x-delivery-count changes)', () => {
    const first = deadLetterRecordId(
      delivery({ 'x-factline-publish': 'abc.7', 'x-death': [death(1)], 'x-delivery-count': 0 }),
      queue,
      'm-1',
    );
    const again = deadLetterRecordId(
      delivery({ 'x-factline-publish': 'abc.7', 'x-death': [death(1)], 'x-delivery-count': 3 }),
      queue,
      'm-1',
    );
    assert.equal(first, again);
    assert.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('differs for another AMQP message (a redrive), another death count, message, queue or time', () => {
    const base = deadLetterRecordId(delivery({ 'x-factline-publish': 'abc.7', 'x-death': [death(1)] }), queue, 'm-1');
    const others = [
      deadLetterRecordId(delivery({ 'x-factline-publish': 'def.0', 'x-death': [death(1)] }), queue, 'm-1'),
      deadLetterRecordId(delivery({ 'x-factline-publish': 'abc.7', 'x-death': [death(2)] }), queue, 'm-1'),
      deadLetterRecordId(delivery({ 'x-factline-publish': 'abc.7', 'x-death': [death(1)] }), queue, 'm-2'),
      deadLetterRecordId(delivery({ 'x-factline-publish': 'abc.7', 'x-death': [death(1)] }), 'shop.x.y.dead', 'm-1'),
      deadLetterRecordId(delivery({ 'x-factline-publish': 'abc.7', 'x-death': [death(1, 1)] }), queue, 'm-1'),
    ];
    assert.equal(new Set([base, ...others]).size, others.length + 1);
  });

  it('keys on x-death alone for a message without a publisher name (a number from an older publisher)', () => {
    const a = deadLetterRecordId(delivery({ 'x-factline-publish': 3, 'x-death': [death(1)] }), queue, 'm-1');
    const b = deadLetterRecordId(delivery({ 'x-factline-publish': 9, 'x-death': [death(1)] }), queue, 'm-1');
    assert.equal(a, b);
  });

  it('is random for a delivery with neither (put into the queue by hand)', () => {
    assert.notEqual(deadLetterRecordId(delivery({}), queue, 'm-1'), deadLetterRecordId(delivery({}), queue, 'm-1'));
    assert.notEqual(
      deadLetterRecordId({ properties: { headers: undefined } }, queue, 'm-1'),
      deadLetterRecordId({ properties: {} }, queue, 'm-1'),
    );
  });
});
