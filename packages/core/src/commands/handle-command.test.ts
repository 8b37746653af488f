import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Aggregate,
  aggregateDecider,
  type Decider,
  type Event,
  getInMemoryEventStore,
  handleCommand,
  isConcurrencyError,
  rehydrate,
} from '../index.ts';
import { deciderSpecification } from '../testing/index.ts';

type Deposited = Event<'Deposited', { amount: number }>;
type Withdrawn = Event<'Withdrawn', { amount: number }>;
type AccountEvent = Deposited | Withdrawn;
type AccountCommand = { type: 'Deposit'; amount: number } | { type: 'Withdraw'; amount: number };

class InsufficientFunds extends Error {}

const account: Decider<{ balance: number }, AccountCommand, AccountEvent> = {
  initialState: () => ({ balance: 0 }),
  evolve: (state, event) => ({
    balance: event.type === 'Deposited' ? state.balance + event.data.amount : state.balance - event.data.amount,
  }),
  decide: (command, state) => {
    if (command.type === 'Deposit') return { type: 'Deposited', data: { amount: command.amount } };
    if (command.amount > state.balance) throw new InsufficientFunds(`balance ${state.balance}`);
    return command.amount === 0 ? [] : [{ type: 'Withdrawn', data: { amount: command.amount } }];
  },
};

describe('handleCommand', () => {
  it('loads, decides, appends with the loaded version and returns the new state', async () => {
    const store = getInMemoryEventStore();
    const first = await handleCommand(store, 'account-1', { type: 'Deposit', amount: 50 }, account);
    assert.deepEqual(first.state, { balance: 50 });
    assert.equal(first.version, 1);
    assert.equal(first.attempts, 1);
    const second = await handleCommand(store, 'account-1', { type: 'Withdraw', amount: 20 }, account);
    assert.deepEqual(second.state, { balance: 30 });
    assert.equal(second.version, 2);
    assert.equal(second.newEvents[0]?.type, 'Withdrawn');
    assert.equal(second.position, second.newEvents[0]?.position);
  });

  it('appends nothing when decide returns no events', async () => {
    const store = getInMemoryEventStore();
    await handleCommand(store, 'account-1', { type: 'Deposit', amount: 5 }, account);
    const result = await handleCommand(store, 'account-1', { type: 'Withdraw', amount: 0 }, account);
    assert.deepEqual(result.newEvents, []);
    assert.equal(result.version, 1);
    assert.equal(await store.headPosition(), 1);
  });

  it('lets domain errors through without retrying or writing', async () => {
    const store = getInMemoryEventStore();
    await assert.rejects(
      handleCommand(store, 'account-1', { type: 'Withdraw', amount: 1 }, account),
      InsufficientFunds,
    );
    assert.equal(await store.headPosition(), 0);
  });

  it('retries a conflict by deciding again on the fresh state, with backoff', async () => {
    const store = getInMemoryEventStore();
    await handleCommand(store, 'account-1', { type: 'Deposit', amount: 10 }, account);
    const delays: number[] = [];
    let interfered = false;
    // A competing writer slips in between this command's read and its append, once.
    const racing = {
      ...store,
      async append(...args: Parameters<typeof store.append>) {
        if (!interfered) {
          interfered = true;
          await store.append('account-1', [{ type: 'Withdrawn', data: { amount: 10 } }]);
        }
        return store.append(...args);
      },
    };
    await assert.rejects(
      handleCommand(racing, 'account-1', { type: 'Withdraw', amount: 10 }, account, {
        sleep: async (ms) => {
          delays.push(ms);
        },
        random: () => 0.5,
      }),
      InsufficientFunds, // decided again on the fresh state: the money is gone
    );
    assert.deepEqual(delays, [1]); // 0.5 × min(100, 2 × 2^0)
  });

  it('a retry reads only the events after the ones it folded, unless the stream was re-created', async () => {
    const store = getInMemoryEventStore();
    for (let i = 0; i < 5; i++) await handleCommand(store, 'account-2', { type: 'Deposit', amount: 10 }, account);
    const reads: (number | undefined)[] = [];
    let interference: (() => Promise<unknown>) | undefined;
    const watched = {
      ...store,
      readStream(...args: Parameters<typeof store.readStream>) {
        reads.push(args[1]?.from);
        return store.readStream(...args);
      },
      async append(...args: Parameters<typeof store.append>) {
        const interfere = interference;
        interference = undefined;
        await interfere?.();
        return store.append(...args);
      },
    };
    // A competing deposit lands between read and append: the retry reads from version 5 on.
    interference = () => store.append('account-2', [{ type: 'Deposited', data: { amount: 7 } }]);
    const retried = await handleCommand(watched, 'account-2', { type: 'Withdraw', amount: 50 }, account, {
      sleep: async () => {},
    });
    assert.deepEqual(reads, [undefined, 5]);
    assert.deepEqual(retried.state, { balance: 7 });
    assert.equal(retried.version, 7);

    // The stream is deleted and written again to the same version: the retry must not trust
    // its earlier state (the event at that version has another id), so it reads everything.
    reads.length = 0;
    interference = async () => {
      await store.deleteStream('account-2');
      for (let i = 0; i < 8; i++) await store.append('account-2', [{ type: 'Deposited', data: { amount: 1 } }]);
    };
    const again = await handleCommand(watched, 'account-2', { type: 'Withdraw', amount: 7 }, account, {
      sleep: async () => {},
    });
    assert.deepEqual(reads, [undefined, 7, undefined]);
    assert.deepEqual(again.state, { balance: 1 });
    assert.equal(again.version, 9);
  });

  it('gives up after maxAttempts with a retryable CommandRetriesExhaustedError', async () => {
    const store = getInMemoryEventStore();
    const alwaysConflicting = {
      ...store,
      async append(...args: Parameters<typeof store.append>) {
        await store.append(args[0], [{ type: 'Deposited', data: { amount: 1 } }]);
        return store.append(...args);
      },
    };
    const error = await handleCommand(alwaysConflicting, 'acc-1', { type: 'Deposit', amount: 1 }, account, {
      maxAttempts: 3,
      sleep: async () => {},
    }).catch((e: unknown) => e);
    assert.equal((error as { code?: string }).code, 'COMMAND_RETRIES_EXHAUSTED');
    assert.equal((error as { attempts?: number }).attempts, 3);
    assert.ok(isConcurrencyError((error as Error).cause));
  });

  it('with a caller-given expectedVersion, a conflict is the caller’s: no retry', async () => {
    const store = getInMemoryEventStore();
    await handleCommand(store, 'account-1', { type: 'Deposit', amount: 10 }, account);
    await assert.rejects(
      handleCommand(store, 'account-1', { type: 'Deposit', amount: 1 }, account, { expectedVersion: 0 }),
      (e: unknown) => isConcurrencyError(e) && e.actualVersion === 1,
    );
    const ok = await handleCommand(store, 'account-1', { type: 'Deposit', amount: 1 }, account, { expectedVersion: 1 });
    assert.equal(ok.version, 2);
  });

  it('with a caller-given expectedVersion, a stream at another version is a conflict before decide runs', async () => {
    const store = getInMemoryEventStore();
    await handleCommand(store, 'account-1', { type: 'Deposit', amount: 10 }, account);
    await handleCommand(store, 'account-1', { type: 'Withdraw', amount: 10 }, account);
    let decided = 0;
    const counting = {
      ...account,
      decide: (c: AccountCommand, s: { balance: number }) => {
        decided++;
        return account.decide(c, s);
      },
    };
    // The client read version 1 (balance 10); the stream is at 2 (balance 0): its If-Match fails, not the rule.
    await assert.rejects(
      handleCommand(store, 'account-1', { type: 'Withdraw', amount: 5 }, counting, { expectedVersion: 1 }),
      (e: unknown) => isConcurrencyError(e) && e.expectedVersion === 1 && e.actualVersion === 2,
    );
    // A version the stream has not reached yet: decided on version 2, the append must not land once others reach 3.
    await assert.rejects(
      handleCommand(store, 'account-1', { type: 'Deposit', amount: 5 }, counting, { expectedVersion: 3 }),
      (e: unknown) => isConcurrencyError(e) && e.expectedVersion === 3 && e.actualVersion === 2,
    );
    await assert.rejects(
      handleCommand(store, 'account-1', { type: 'Deposit', amount: 5 }, counting, { expectedVersion: 'no-stream' }),
      (e: unknown) => isConcurrencyError(e) && e.expectedVersion === 'no-stream' && e.actualVersion === 2,
    );
    await assert.rejects(
      handleCommand(store, 'account-2', { type: 'Deposit', amount: 5 }, counting, { expectedVersion: 'stream-exists' }),
      (e: unknown) => isConcurrencyError(e) && e.expectedVersion === 'stream-exists' && e.actualVersion === 0,
    );
    assert.equal(decided, 0, 'decide never ran on a state the caller did not expect');
    assert.equal((await store.readStream('account-1')).version, 2);
    assert.equal((await store.readStream('account-2')).version, 0);
  });

  it('merges the given metadata (correlation and causation) into every new event', async () => {
    const store = getInMemoryEventStore();
    const result = await handleCommand(store, 'account-1', { type: 'Deposit', amount: 10 }, account, {
      metadata: { correlationId: 'corr-1', causationId: 'cmd-1' },
    });
    assert.deepEqual(result.newEvents[0]?.metadata, { correlationId: 'corr-1', causationId: 'cmd-1' });
  });
});

class Order implements Aggregate<OrderEvent> {
  status: 'new' | 'placed' | 'cancelled' = 'new';
  items = 0;
  apply(event: OrderEvent): void {
    if (event.type === 'OrderPlaced') {
      this.status = 'placed';
      this.items = event.data.items.length;
    } else this.status = 'cancelled';
  }
  place(items: string[]): OrderEvent[] {
    if (this.status !== 'new') throw new Error('already placed');
    return [{ type: 'OrderPlaced', data: { items } }];
  }
  cancel(): OrderEvent[] {
    if (this.status !== 'placed') throw new Error('not placed');
    return [{ type: 'OrderCancelled', data: {} }];
  }
}
type OrderEvent = Event<'OrderPlaced', { items: string[] }> | Event<'OrderCancelled', Record<string, never>>;
type OrderCommand = { type: 'Place'; items: string[] } | { type: 'Cancel' };
const orderDecider = aggregateDecider(
  () => new Order(),
  (order, command: OrderCommand) => (command.type === 'Place' ? order.place(command.items) : order.cancel()),
);

describe('class aggregates', () => {
  it('rehydrate applies past events in order', () => {
    const order = rehydrate(() => new Order(), [{ type: 'OrderPlaced', data: { items: ['a', 'b'] } } as OrderEvent]);
    assert.equal(order.status, 'placed');
    assert.equal(order.items, 2);
  });

  it('aggregateDecider drives a class aggregate through handleCommand', async () => {
    const store = getInMemoryEventStore();
    const placed = await handleCommand(store, 'order-1', { type: 'Place', items: ['a'] }, orderDecider);
    assert.equal(placed.state.status, 'placed');
    const cancelled = await handleCommand(store, 'order-1', { type: 'Cancel' }, orderDecider);
    assert.equal(cancelled.state.status, 'cancelled');
    assert.deepEqual(
      (await store.readStream('order-1')).events.map((e) => e.type),
      ['OrderPlaced', 'OrderCancelled'],
    );
  });
});

describe('deciderSpecification', () => {
  const spec = deciderSpecification(account);
  it('checks emitted events, resulting state and thrown errors', () => {
    spec
      .given([{ type: 'Deposited', data: { amount: 5 } }])
      .when({ type: 'Withdraw', amount: 5 })
      .thenEmits([{ type: 'Withdrawn', data: { amount: 5 } }]);
    spec
      .given([{ type: 'Deposited', data: { amount: 5 } }])
      .when({ type: 'Deposit', amount: 2 })
      .thenState({ balance: 7 });
    spec.given([]).when({ type: 'Withdraw', amount: 1 }).thenThrows(InsufficientFunds);
    spec
      .given()
      .when({ type: 'Withdraw', amount: 1 })
      .thenThrows(/balance 0/);
  });
  it('fails when the decider disagrees', () => {
    assert.throws(() =>
      spec
        .given([])
        .when({ type: 'Deposit', amount: 1 })
        .thenEmits([{ type: 'Deposited', data: { amount: 2 } }]),
    );
    assert.throws(() => spec.given([]).when({ type: 'Deposit', amount: 1 }).thenThrows());
  });
});
