import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isProjectionFailedError, isValidationError, ValidationError } from '../errors/index.ts';
import { defineProjection } from '../projections/types.ts';
import { checkInlineProjections, inlineEvents, inlineProjectionFailure } from './inline-projections.ts';
import type { RecordedEvent } from './types.ts';

const event = (position: number, type: string): RecordedEvent => ({
  id: `e-${position}`,
  streamId: 's-1',
  streamVersion: position,
  position,
  type,
  schemaVersion: 1,
  data: {},
  metadata: {},
  recordedAt: new Date(0),
});
const totals = defineProjection({ name: 'totals', handles: ['Placed'], handle: () => {} });

describe('inline projections', () => {
  it('the option: a copy of the list; a projection without handles or handle is a ValidationError', () => {
    const given = [totals];
    const checked = checkInlineProjections(given);
    given.pop();
    assert.deepEqual(checked, [totals]);
    assert.deepEqual(checkInlineProjections(undefined), []);
    assert.throws(() => checkInlineProjections([{ name: 'x', handle: () => {} } as never]), isValidationError);
    assert.throws(() => checkInlineProjections([{ name: 'x', handles: [] } as never]), isValidationError);
  });

  it('a definition the projection runner refuses is refused, each issue at <where>[i].<field> (an unknown onFailure too)', () => {
    const refused = (given: readonly unknown[]) => {
      try {
        checkInlineProjections(given as never, 'getStore.inlineProjections');
      } catch (error) {
        assert.ok(isValidationError(error), String(error));
        return error.issues.map((issue) => issue.path);
      }
      return assert.fail('taken');
    };
    assert.deepEqual(refused([{ ...totals, onFailure: 'skip' }]), ['getStore.inlineProjections[0].onFailure']);
    assert.deepEqual(
      refused([totals, { ...totals, effects: 'none', version: 0 }, { ...totals, name: 'Bad Name', handles: [] }]),
      [
        'getStore.inlineProjections[1].name',
        'getStore.inlineProjections[1].version',
        'getStore.inlineProjections[1].effects',
        'getStore.inlineProjections[2].name',
        'getStore.inlineProjections[2].handles',
      ],
    );
    assert.deepEqual(refused([{ ...totals, retire: 'drop it' }]), ['getStore.inlineProjections[0].retire']);
    // What the runner takes is taken: onFailure 'park', effects 'external', a version (inline, none of them acts).
    const taken = checkInlineProjections([{ ...totals, onFailure: 'park', effects: 'external', version: 2 }]);
    assert.equal(taken.length, 1);
  });

  it('a projection gets the events of its types; its failure is named, a Factline error passes as it is', () => {
    const mine = inlineEvents(totals, [event(4, 'Noted'), event(5, 'Placed'), event(6, 'Placed')]);
    assert.deepEqual(
      mine.map((e) => e.position),
      [5, 6],
    );
    const failure = inlineProjectionFailure(totals, mine, new Error('negative total'));
    assert.ok(isProjectionFailedError(failure));
    assert.equal(failure.position, 5);
    assert.match(failure.message, /totals.*negative total/);
    const typed = new ValidationError({ path: 'handle', message: 'returned a promise' });
    assert.equal(inlineProjectionFailure(totals, mine, typed), typed);
  });
});
