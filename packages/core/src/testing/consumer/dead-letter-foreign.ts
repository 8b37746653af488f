import assert from 'node:assert/strict';
import { type DeadLetter, getInMemoryDeadLetterStore } from '../../messaging/consumer-ports.ts';
import type { Message } from '../../messaging/message.ts';
import { uniqueCategory } from '../conformance/context.ts';
import type { ConsumerConformanceCase } from './context.ts';

/** Dead letters of messages Factline would not write: written into a broker by another program. */
export const deadLetterForeignCases: readonly ConsumerConformanceCase[] = [
  {
    name: 'a message holding a NUL or a lone surrogate (written by another program) is kept and read back as it is, apart from one whose id shows the NUL as U+2400',
    async run(c) {
      const store = c.environment.deadLetters ?? getInMemoryDeadLetterStore();
      const consumer = uniqueCategory('dlq-foreign');
      const at = new Date(Date.UTC(2026, 0, 1));
      const message: Message = {
        id: `${consumer}-m\u0000`,
        type: 'Upload\u0000ed',
        data: { note: 'a\u0000b \ud800', 'k\u0000': [1, '\udc00'] },
        metadata: { correlationId: `${consumer}-corr\u0000` },
        key: 'file\u0000',
        headers: { h: 'x\u0000' },
        createdAt: at,
      };
      // Another message, whose id, type and key are the first one's shown with U+2400 (␀).
      const twin: Message = {
        ...message,
        id: `${consumer}-m\u2400`,
        type: 'Upload\u2400ed',
        key: 'file\u2400',
        data: { note: 'plain' },
      };
      const record = (i: number, of: Message): DeadLetter => ({
        id: `${consumer}-${i}`,
        consumer,
        topic: c.topic,
        message: of,
        error: { type: 'Error', message: 'cannot read the upload' },
        reason: 'not retryable',
        attempts: 1,
        firstFailureAt: at,
        lastFailureAt: at,
        deadLetteredAt: new Date(+at + i),
        redrives: [],
        state: 'dead',
      });
      const first = record(1, message);
      const second = record(2, twin);
      await store.add(first);
      await store.add(second);
      const ids = (list: DeadLetter[]) => list.map((r) => r.id);
      assert.deepEqual(await store.get(first.id), first, 'the record, its message as it was received');
      assert.deepEqual(await store.get(second.id), second, 'the other message: a record of its own');
      assert.deepEqual(await store.list({ consumer }), [first, second]);
      assert.deepEqual(ids(await store.list({ consumer, type: 'Upload\u0000ed' })), [first.id], 'by its own type');
      assert.deepEqual(ids(await store.list({ consumer, type: 'Upload\u2400ed' })), [second.id]);

      // A new failure of the message refreshes its record (not the other one's), and an update keeps the message.
      const later = new Date(+at + 10);
      await store.add({
        ...first,
        id: `${consumer}-3`,
        error: { type: 'Error', message: 'again' },
        lastFailureAt: later,
        deadLetteredAt: later,
      });
      const refreshed: DeadLetter = {
        ...first,
        error: { type: 'Error', message: 'again' },
        lastFailureAt: later,
        deadLetteredAt: later,
      };
      assert.deepEqual(await store.get(first.id), refreshed, 'refreshed, its message unchanged');
      assert.equal(await store.get(`${consumer}-3`), undefined, 'no second record');
      assert.deepEqual(await store.get(second.id), second, 'the other record untouched');
      const discarded: DeadLetter = { ...refreshed, state: 'discarded' };
      assert.equal(await store.update(discarded, refreshed), true, 'written');
      assert.deepEqual(await store.get(first.id), discarded);
      assert.deepEqual(ids(await store.list({ consumer, state: 'discarded' })), [first.id]);
    },
  },
];
