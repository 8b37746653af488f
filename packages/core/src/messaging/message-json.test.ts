import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage, type Message, messageFromJson, messageToJson } from './message.ts';

describe('messageToJson and messageFromJson', () => {
  it('writes the text JSON.stringify writes, for messages of one time and of different times', () => {
    let clock = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
    const now = () => clock;
    const messages: Message[] = [];
    for (let i = 0; i < 4; i++) {
      messages.push(createMessage({ type: 'T', data: { i, when: 'x' }, key: `k-${i}`, headers: { h: 'v' } }, now));
      if (i % 2 === 1) clock += 1;
    }
    messages.push(createMessage({ type: 'T', data: null, deliverAt: new Date(clock + 500) }, now));
    messages.push({ ...(messages[0] as Message), createdAt: new Date(Number.NaN) });
    for (const message of messages) assert.equal(messageToJson(message), JSON.stringify(message));
  });

  it('reads back the message written, its dates as Dates', () => {
    const deliverAt = new Date(Date.now() + 60_000);
    const message = createMessage({ type: 'T', data: { a: [1, 'b'] }, key: 'k', deliverAt });
    const read = messageFromJson(messageToJson(message));
    assert.deepEqual(read, message);
    assert.ok(read.createdAt instanceof Date && read.deliverAt instanceof Date);
    const noDelay = messageFromJson(JSON.stringify({ ...message, deliverAt: null }));
    assert.equal('deliverAt' in noDelay, false, 'a null deliverAt is no delay');
  });
});
