import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deadRecord } from '../testing/consumer/dead-letter-fixtures.ts';
import { redriveDeadLetter } from './consumer-dead-letters.ts';
import { type DeadLetter, getInMemoryDeadLetterStore } from './consumer-ports.ts';

const record = deadRecord('refunds', 'orders', 1);
const at = record.deadLetteredAt;

describe('redriveDeadLetter', () => {
  it('two redrives of one record at the same moment: both may send, one marks it, neither fails', async () => {
    const store = getInMemoryDeadLetterStore();
    await store.add(record);
    let sends = 0;
    // Each send waits for the other to have read the record: the two overlap.
    let release = () => {};
    const bothRead = new Promise<void>((resolve) => {
      let read = 0;
      release = () => {
        if (++read === 2) resolve();
      };
    });
    const send = async () => {
      sends += 1;
      release();
      await bothRead;
    };
    const outcomes = await Promise.all([
      redriveDeadLetter(store, record, new Date(at.getTime() + 1), send),
      redriveDeadLetter(store, record, new Date(at.getTime() + 2), send),
    ]);
    assert.equal(sends, 2, 'both sent (at least once: the inbox drops the copy)');
    assert.deepEqual([...outcomes].sort(), [false, true], 'one counted');
    const stored = await store.get(record.id);
    assert.deepEqual([stored?.state, stored?.redrives.length], ['redriven', 1]);
  });

  it('a mark that fails after the send says the message went and the record stays dead', async () => {
    const store = getInMemoryDeadLetterStore();
    await store.add(record);
    const failing = {
      ...store,
      update: async (r: DeadLetter, read?: DeadLetter) => {
        if (r.state === 'redriven') throw new Error('disk full');
        return store.update(r, read);
      },
    };
    await assert.rejects(
      redriveDeadLetter(failing, record, new Date(), async () => undefined),
      /was redriven, but marking its record failed \(disk full\): it stays dead/,
    );
    assert.equal((await store.get(record.id))?.state, 'dead');
  });
});
