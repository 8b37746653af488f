import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidationError } from '../../errors/index.ts';
import { getInMemoryEventStore } from '../../store/in-memory.ts';
import { paymentFlow } from '../fixtures/payment-flow.ts';
import { createWorkflowHandler } from '../handler.ts';
import { getInMemoryTimerStore } from './in-memory.ts';
import { createWorkflowTimers } from './poller.ts';

const store = getInMemoryEventStore();
const timers = getInMemoryTimerStore(store);
const handler = createWorkflowHandler(paymentFlow, { store });

/** The issues `createWorkflowTimers` refuses `handlers` with, or a failure naming what it did instead. */
function refusal(handlers: readonly unknown[]): { path: string; message: string }[] {
  try {
    createWorkflowTimers({ timers, handlers: handlers as never });
  } catch (error) {
    assert.ok(isValidationError(error), `expected a ValidationError, got ${String(error)}`);
    return error.issues.map(({ path, message }) => ({ path, message }));
  }
  assert.fail('expected a ValidationError, but the poller was created');
}

describe('createWorkflowTimers checks each of its handlers', () => {
  it('an entry that is not a workflow handler is a ValidationError at handlers[i] saying what it lacks', () => {
    const issues = refusal([handler, {}, { workflow: { name: 'payment' } }, { workflow: {}, fireTimer: () => {} }, 5]);
    assert.deepEqual(
      issues.map((issue) => issue.path),
      [
        'createWorkflowTimers.handlers[1]',
        'createWorkflowTimers.handlers[2]',
        'createWorkflowTimers.handlers[3]',
        'createWorkflowTimers.handlers[4]',
      ],
    );
    assert.match(issues[0]?.message ?? '', /no workflow\.name .* and no fireTimers or fireTimer function/);
    assert.match(issues[1]?.message ?? '', /no fireTimers or fireTimer function$/);
    assert.match(issues[2]?.message ?? '', /no workflow\.name \(the workflow it fires timers of\)$/);
    assert.match(issues[3]?.message ?? '', /must be a workflow handler .*got number 5/);
  });

  it('two handlers of one workflow (the second would silently replace the first) are refused, naming both', () => {
    const again = createWorkflowHandler(paymentFlow, { store });
    assert.deepEqual(refusal([handler, again]), [
      {
        path: 'createWorkflowTimers.handlers[1]',
        message: `fires the timers of workflow '${paymentFlow.name}', as handlers[0] does: give one handler per workflow`,
      },
    ]);
  });

  it('handlers made by createWorkflowHandler, or wrappers with workflow and fireTimer, are taken', async () => {
    const wrapper = { workflow: { name: 'other' }, fireTimer: handler.fireTimer };
    const poller = createWorkflowTimers({ timers, handlers: [handler, wrapper as never] });
    await poller.stop();
  });
});
