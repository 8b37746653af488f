import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Aggregate,
  aggregateDecider,
  type Decider,
  type Event,
  getInMemoryEventStore,
  getInMemorySnapshotStore,
  type HandleCommandOptions,
  handleCommand,
  isValidationError,
  type SnapshotErrorContext,
  type SnapshotStore,
} from '../index.ts';

type Added = Event<'Added', { n: number }>;
const counter: Decider<{ total: number }, { n: number }, Added> = {
  initialState: () => ({ total: 0 }),
  evolve: (state, event) => ({ total: state.total + event.data.n }),
  decide: (command) => (command.n === 0 ? [] : [{ type: 'Added', data: { n: command.n } }]),
};

const collect = () => {
  const errors: { error: unknown; context: SnapshotErrorContext }[] = [];
  return { errors, onError: (error: unknown, context: SnapshotErrorContext) => errors.push({ error, context }) };
};

async function validationPaths(work: Promise<unknown>): Promise<string[]> {
  const error = await work.then(
    () => assert.fail('expected a ValidationError'),
    (e: unknown) => e,
  );
  assert.ok(isValidationError(error), String(error));
  return error.issues.map((issue) => issue.path);
}

describe('handleCommand snapshots: options', () => {
  it('refuses bad, missing and unknown snapshot options before reading or writing anything', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const onError = () => {};
    const where = 'handleCommand options.snapshots';
    const cases: [unknown, string[]][] = [
      [{ store: snapshots, version: 1 }, [`${where}.onError`]],
      [{ store: snapshots, version: 0, onError }, [`${where}.version`]],
      [{ store: snapshots, version: 1, every: 0, onError }, [`${where}.every`]],
      [{ store: snapshots, version: 1, every: '100', onError }, [`${where}.every`]],
      [{ store: {}, version: 1, onError }, [`${where}.store`]],
      [{ store: snapshots, version: 1, evrey: 10, onError }, [`${where}.evrey`]],
      [{ store: snapshots, version: 1, name: '', onError }, [`${where}.name`]],
      ['yes', ['handleCommand options.snapshots']],
    ];
    for (const [given, expected] of cases) {
      const paths = await validationPaths(
        handleCommand(store, 'c-1', { n: 1 }, counter, { snapshots: given as never }),
      );
      assert.deepEqual(paths, expected, JSON.stringify(given));
    }
    assert.equal(await store.headPosition(), 0);
  });

  it('says what a misspelt option was meant to be', async () => {
    const error = await handleCommand(getInMemoryEventStore(), 'c-1', { n: 1 }, counter, {
      snapshots: { store: getInMemorySnapshotStore(), version: 1, onError: () => {}, evrey: 5 } as never,
    }).catch((e: unknown) => e as Error);
    assert.match(String(error), /did you mean 'every'\?/);
  });

  it('without the option, or when decide returns nothing, no snapshot is written', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const plain = await handleCommand(store, 'c-1', { n: 1 }, counter);
    assert.equal(await plain.snapshotSaved, false);
    const { onError, errors } = collect();
    const nothing = await handleCommand(store, 'c-1', { n: 0 }, counter, {
      snapshots: { store: snapshots, version: 1, every: 1, onError },
    });
    assert.equal(await nothing.snapshotSaved, false);
    assert.equal(await snapshots.load('c-1'), undefined);
    assert.deepEqual(errors, []);
  });
});

describe('handleCommand snapshots: types (checked by tsc)', () => {
  it('bare options fit any decider; snapshot options are typed by its state', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const bare: HandleCommandOptions = { maxAttempts: 3 };
    assert.equal((await handleCommand(store, 'c-1', { n: 1 }, counter, bare)).state.total, 1);
    const typed: HandleCommandOptions<{ total: number }, Added> = {
      snapshots: { store: snapshots, version: 1, every: 1, toSnapshot: (state) => state.total, onError: () => {} },
    };
    // @ts-expect-error: a snapshot must come back as the decider's state
    typed.snapshots = { store: snapshots, version: 1, onError: () => {}, fromSnapshot: () => 'not a state' };
    // @ts-expect-error: the bare options hold no snapshots (give the state type)
    const untyped: HandleCommandOptions = { snapshots: { store: snapshots, version: 1, onError: () => {} } };
    assert.ok(untyped);
  });
});

describe('handleCommand snapshots: saving after the append', () => {
  it('returns without waiting for the save; snapshotSaved settles when it is stored', async () => {
    const store = getInMemoryEventStore();
    const inner = getInMemorySnapshotStore();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow: SnapshotStore = {
      load: (...args) => inner.load(...args),
      save: (snapshot) => {
        const saving = inner.save(snapshot);
        return gate.then(() => saving);
      },
      delete: (...args) => inner.delete(...args),
    };
    const { onError } = collect();
    const result = await handleCommand(store, 'c-1', { n: 3 }, counter, {
      snapshots: { store: slow, version: 1, every: 1, onError },
    });
    assert.equal(result.version, 1, 'the command finished while the save is held');
    let settled = false;
    void result.snapshotSaved.then(() => {
      settled = true;
    });
    await Promise.resolve();
    assert.equal(settled, false);
    release();
    assert.equal(await result.snapshotSaved, true);
  });

  it('stores the state as it was when the command returned, whatever the caller does with it next', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const { onError } = collect();
    const result = await handleCommand(store, 'c-1', { n: 3 }, counter, {
      snapshots: { store: snapshots, version: 1, every: 1, onError },
    });
    result.state.total = 1000;
    await result.snapshotSaved;
    assert.deepEqual((await snapshots.load('c-1'))?.state, { total: 3 });
  });

  it('reports a save that throws instead of rejecting, and a policy that throws', async () => {
    const store = getInMemoryEventStore();
    const inner = getInMemorySnapshotStore();
    const throwing: SnapshotStore = {
      load: (...args) => inner.load(...args),
      save: () => {
        throw new TypeError('not even a promise');
      },
      delete: (...args) => inner.delete(...args),
    };
    const { onError, errors } = collect();
    const first = await handleCommand(store, 'c-1', { n: 1 }, counter, {
      snapshots: { store: throwing, version: 1, every: 1, onError },
    });
    assert.equal(await first.snapshotSaved, false);
    const second = await handleCommand(store, 'c-1', { n: 1 }, counter, {
      snapshots: {
        store: inner,
        version: 1,
        every: () => {
          throw new RangeError('policy bug');
        },
        onError,
      },
    });
    assert.equal(second.version, 2);
    assert.equal(await second.snapshotSaved, false);
    assert.deepEqual(
      errors.map((e) => [e.context.operation, (e.error as Error).message]),
      [
        ['save', 'not even a promise'],
        ['policy', 'policy bug'],
      ],
    );
  });

  it('a fromSnapshot that throws is reported and the state rebuilt from the events', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const { onError, errors } = collect();
    const options = { snapshots: { store: snapshots, version: 1, every: 1, onError } };
    await handleCommand(store, 'c-1', { n: 2 }, counter, options);
    const result = await handleCommand(store, 'c-1', { n: 2 }, counter, {
      snapshots: {
        ...options.snapshots,
        fromSnapshot: () => {
          throw new SyntaxError('unreadable');
        },
      },
    });
    assert.deepEqual(result.state, { total: 4 });
    assert.deepEqual(
      errors.map((e) => e.context.operation),
      ['load'],
    );
  });

  it('a snapshot of another version taken of a stream since deleted does not hold up the new stream’s saves', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const { onError, errors } = collect();
    for (let i = 0; i < 6; i++) {
      await (
        await handleCommand(store, 'c-1', { n: 1 }, counter, {
          snapshots: { store: snapshots, version: 1, every: 3, onError },
        })
      ).snapshotSaved;
    }
    assert.equal((await snapshots.load('c-1'))?.version, 6);
    await store.deleteStream('c-1');
    // The new code's snapshots have another shape; the stream starts again at version 1.
    const saved: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      const result = await handleCommand(store, 'c-1', { n: 1 }, counter, {
        snapshots: { store: snapshots, version: 2, every: 3, onError },
      });
      saved.push(await result.snapshotSaved);
    }
    assert.deepEqual(saved, [false, false, true]);
    const stored = await snapshots.load('c-1');
    assert.deepEqual([stored?.version, stored?.snapshotVersion, stored?.state], [3, 2, { total: 3 }]);
    assert.deepEqual(errors, []);
  });

  it('a snapshot of another version of the same stream is left for the code that reads it', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const { onError, errors } = collect();
    await (
      await handleCommand(store, 'c-1', { n: 1 }, counter, {
        snapshots: { store: snapshots, version: 1, every: 1, onError },
      })
    ).snapshotSaved;
    // Another process still on version 1 (a rolling deploy): its snapshot stays while the stream continues it.
    const result = await handleCommand(store, 'c-1', { n: 0 }, counter, {
      snapshots: { store: snapshots, version: 2, onError },
    });
    assert.deepEqual(errors, []);
    assert.deepEqual(result.state, { total: 1 });
    assert.equal((await snapshots.load('c-1'))?.snapshotVersion, 1);
  });
});

type OrderEvent = Event<'ItemAdded', { sku: string }> | Event<'Placed', Record<string, never>>;

class Order implements Aggregate<OrderEvent> {
  #items: string[] = [];
  placed = false;
  get items(): readonly string[] {
    return this.#items;
  }
  apply(event: OrderEvent): void {
    if (event.type === 'ItemAdded') this.#items.push(event.data.sku);
    else this.placed = true;
  }
  add(sku: string): OrderEvent[] {
    if (this.placed) throw new Error('already placed');
    return [{ type: 'ItemAdded', data: { sku } }];
  }
  toJSON() {
    return { items: [...this.#items], placed: this.placed };
  }
  static from(data: unknown): Order {
    const order = new Order();
    const { items, placed } = data as { items: string[]; placed: boolean };
    for (const sku of items) order.apply({ type: 'ItemAdded', data: { sku } });
    order.placed = placed;
    return order;
  }
}
const orderDecider = aggregateDecider(
  () => new Order(),
  (order, command: { sku: string }) => order.add(command.sku),
);

describe('handleCommand snapshots: class aggregates', () => {
  it('asks for toSnapshot and fromSnapshot when the state is a class instance', async () => {
    const paths = await validationPaths(
      handleCommand(getInMemoryEventStore(), 'order-1', { sku: 'a' }, orderDecider, {
        snapshots: { store: getInMemorySnapshotStore(), version: 1, every: 1, onError: () => {} },
      }),
    );
    assert.deepEqual(paths, ['handleCommand options.snapshots.toSnapshot']);
    const error = await handleCommand(getInMemoryEventStore(), 'order-1', { sku: 'a' }, orderDecider, {
      snapshots: {
        store: getInMemorySnapshotStore(),
        version: 1,
        toSnapshot: (order) => order.toJSON(),
        onError: () => {},
      },
    }).catch((e: unknown) => e);
    assert.match(String(error), /fromSnapshot: is required: the decider's state is a Order instance/);
  });

  it('snapshots an aggregate through its own JSON form and restores an instance from it', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const { onError, errors } = collect();
    const options = {
      snapshots: {
        store: snapshots,
        version: 1,
        every: 2,
        toSnapshot: (order: Order) => order.toJSON(),
        fromSnapshot: Order.from,
        onError,
      },
    };
    for (const sku of ['a', 'b', 'c']) {
      await (await handleCommand(store, 'order-1', { sku }, orderDecider, options)).snapshotSaved;
    }
    assert.deepEqual((await snapshots.load('order-1'))?.state, { items: ['a', 'b'], placed: false });
    const reads: (number | undefined)[] = [];
    const watched = {
      ...store,
      readStream: ((id, readOptions) => {
        reads.push(readOptions?.from);
        return store.readStream(id, readOptions);
      }) as typeof store.readStream,
    };
    const result = await handleCommand(watched, 'order-1', { sku: 'd' }, orderDecider, options);
    assert.deepEqual(reads, [2]);
    assert.ok(result.state instanceof Order);
    assert.deepEqual(result.state.items, ['a', 'b', 'c', 'd']);
    assert.equal(await result.snapshotSaved, true);
    assert.deepEqual((await snapshots.load('order-1'))?.state, { items: ['a', 'b', 'c', 'd'], placed: false });
    assert.deepEqual(errors, []);
  });
});

describe('handleCommand snapshots: conflicts', () => {
  /** The store with `interfere` run once, between the command's read and its append. */
  const racing = (store: ReturnType<typeof getInMemoryEventStore>, interfere: () => Promise<unknown>) => {
    let pending: (() => Promise<unknown>) | undefined = interfere;
    return {
      ...store,
      async append(...args: Parameters<typeof store.append>) {
        const run = pending;
        pending = undefined;
        await run?.();
        return store.append(...args);
      },
    };
  };

  it('a retry after a conflict on a stream truncated up to the snapshot keeps what the snapshot holds', async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const { onError, errors } = collect();
    const options = { snapshots: { store: snapshots, version: 1, every: 5, onError }, sleep: async () => {} };
    for (let n = 1; n <= 5; n++) await (await handleCommand(store, 'c-1', { n: 100 }, counter, options)).snapshotSaved;
    assert.equal((await snapshots.load('c-1'))?.version, 5);
    // The snapshot is now the only record of events 1..5.
    await store.truncateBefore('c-1', 6);
    const other = () => store.append('c-1', [{ type: 'Added', data: { n: 1 } }]);
    const result = await handleCommand(racing(store, other), 'c-1', { n: 5 }, counter, options);
    assert.equal(result.attempts, 2);
    assert.equal(result.version, 7);
    assert.deepEqual(result.state, { total: 506 }, 'the snapshot (500), the other writer (1) and this command (5)');
    const next = await handleCommand(store, 'c-1', { n: 1 }, counter, options);
    assert.deepEqual(next.state, { total: 507 });
    assert.deepEqual(errors, []);
  });

  it("with expectedVersion 'any', others' events appended meanwhile are in the state returned and saved", async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const { onError, errors } = collect();
    const options = { snapshots: { store: snapshots, version: 1, every: 1, onError } };
    await (await handleCommand(store, 'c-2', { n: 1 }, counter, options)).snapshotSaved;
    const others = () => store.append('c-2', [{ type: 'Added', data: { n: 1000 } }]);
    const result = await handleCommand(racing(store, others), 'c-2', { n: 1 }, counter, {
      ...options,
      expectedVersion: 'any',
    });
    assert.equal(result.version, 3);
    assert.deepEqual(result.state, { total: 1002 });
    assert.equal(await result.snapshotSaved, true);
    assert.deepEqual((await snapshots.load('c-2'))?.state, { total: 1002 });
    const next = await handleCommand(store, 'c-2', { n: 1 }, counter, options);
    assert.deepEqual(next.state, { total: 1003 });
    assert.deepEqual(errors, []);
  });

  it("with expectedVersion 'any' and the events between missing (truncated), nothing is saved", async () => {
    const store = getInMemoryEventStore();
    const snapshots = getInMemorySnapshotStore();
    const { onError } = collect();
    const options = { snapshots: { store: snapshots, version: 1, every: 1, onError } };
    await (await handleCommand(store, 'c-3', { n: 1 }, counter, options)).snapshotSaved;
    const others = async () => {
      await store.append('c-3', [{ type: 'Added', data: { n: 1000 } }]);
      await store.truncateBefore('c-3', 3);
    };
    const result = await handleCommand(racing(store, others), 'c-3', { n: 1 }, counter, {
      ...options,
      expectedVersion: 'any',
    });
    assert.equal(result.version, 3);
    assert.equal(await result.snapshotSaved, false);
    assert.equal((await snapshots.load('c-3'))?.version, 1, 'the older snapshot stays');
  });
});
