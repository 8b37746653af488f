import assert from 'node:assert/strict';
import type { SnapshotErrorContext } from '../../commands/snapshot-options.ts';
import { isValidationError, NonRetryableError, StorageError } from '../../errors/index.ts';
import { createMessage } from '../../messaging/message.ts';
import type { SnapshotStore } from '../../snapshots/types.ts';
import type { EventStore } from '../../store/types.ts';
import { defineWorkflow, send } from '../../workflows/define.ts';
import { createWorkflowHandler } from '../../workflows/handler.ts';
import { foldInstance, instanceStreamId, loadInstance } from '../../workflows/instance.ts';
import { decisionEvents, type SentRecordData, workflowEventTypes as T } from '../../workflows/records.ts';
import type { InstanceSnapshotData, WorkflowSnapshots } from '../../workflows/snapshots.ts';
import { uniqueCategory } from '../conformance/context.ts';
import { countingStore, type SnapshotConformanceCase } from './context.ts';

type Errors = { error: unknown; context: SnapshotErrorContext }[];

/** A counter instance: each `Tick` is counted and answered with `Counted { count }`, the count its decision saw. */
interface Count {
  count: number;
  /** The id of the last tick. */
  last: string;
  /** Kept by the `mapped` variant: JSON cannot carry a Map. */
  tags?: Map<string, number>;
}
type Tick = { type: 'Tick'; data: { id: string } } | { type: 'Poison'; data: { id: string } };
type Counted = { type: 'Counted'; data: { count: number } };

/** While true, `Poison` inputs fail terminally (the instance parks). */
const poisoned = { failing: true };

function counterWorkflow(options: { mapped?: boolean } = {}) {
  return defineWorkflow<Count, Tick, Counted>({
    name: uniqueCategory('wf'),
    inputs: ['Tick', 'Poison'],
    start: ['Tick'],
    correlate: (input) => input.data.id,
    initialState: () => ({ count: 0, last: '' }),
    evolve: (state, recorded) => {
      if (recorded.kind !== 'input' || recorded.message.type !== 'Tick') return state;
      const next: Count = { count: state.count + 1, last: recorded.message.id };
      if (options.mapped) next.tags = new Map([['ticks', next.count]]);
      return next;
    },
    decide: (input, state) => {
      if (input.type === 'Poison' && poisoned.failing) throw new NonRetryableError('poisoned');
      return input.type === 'Tick' ? [send({ type: 'Counted', data: { count: state.count + 1 } })] : [];
    },
  });
}

type Counter = ReturnType<typeof counterWorkflow>;

const tick = (instance: string, id?: string) =>
  createMessage({ type: 'Tick', data: { id: instance }, ...(id === undefined ? {} : { id }) });

/** Records `inputs` ticks in the instance directly (100 per append), as a handler would have: 2 events each. */
async function seedTicks(events: EventStore, workflow: Counter, instance: string, inputs: number): Promise<void> {
  const streamId = instanceStreamId(workflow, instance);
  for (let done = 0; done < inputs; ) {
    const { state, version } = await loadInstance(events, workflow, streamId);
    const batch = [];
    let count = state.count;
    for (let i = 0; i < Math.min(100, inputs - done); i++) {
      const message = { ...tick(instance), metadata: {} };
      batch.push(...decisionEvents(streamId, { message }, [send({ type: 'Counted', data: { count: ++count } })], 0));
    }
    await events.append(streamId, batch, { expectedVersion: version });
    done += batch.length / 2;
  }
}

function options(
  snapshots: SnapshotStore,
  errors: Errors,
  extra: Partial<WorkflowSnapshots<Count>> = {},
): WorkflowSnapshots<Count> {
  return { store: snapshots, version: 1, onError: (error, context) => errors.push({ error, context }), ...extra };
}

/** The count the last recorded decision sent: what `decide` saw the state as. */
async function lastSentCount(events: EventStore, streamId: string): Promise<number | undefined> {
  const { events: last } = await events.readStream(streamId, { direction: 'backwards', limit: 1 });
  const data = last[0]?.type === T.sent ? (last[0].data as SentRecordData).message.data : undefined;
  return (data as { count?: number } | undefined)?.count;
}

export const workflowCases: SnapshotConformanceCase[] = [
  {
    name: 'workflow: a long instance loads from its snapshot and reads only the events after it, as a full fold would',
    async run({ snapshots, events }) {
      const workflow = counterWorkflow();
      const streamId = instanceStreamId(workflow, 'long');
      const errors: Errors = [];
      await seedTicks(events, workflow, 'long', 500);
      const counting = countingStore(events);
      const handler = createWorkflowHandler(workflow, {
        store: counting.store,
        snapshots: options(snapshots, errors, { every: 100 }),
      });
      assert.equal(await handler.handle(tick('long')), 'recorded');
      assert.deepEqual(counting.reads(), [undefined], 'no snapshot yet: the whole stream is read');
      assert.equal(counting.eventsRead(), 1000);
      const saved = await snapshots.load(streamId, { name: 'workflow' });
      assert.equal(saved?.version, 1002, 'written after the input that crossed a multiple of 100');
      assert.equal(saved?.snapshotVersion, 1);

      await seedTicks(events, workflow, 'long', 30);
      counting.reset();
      assert.equal(await handler.handle(tick('long')), 'recorded');
      assert.deepEqual(counting.reads(), [1002], "read from the snapshot's version on");
      assert.equal(counting.eventsRead(), 61, "the snapshot's own event (to check its id) and the 60 after it");
      assert.equal(await lastSentCount(events, streamId), 532, 'decided on the state snapshot + tail');
      const full = await loadInstance(events, workflow, streamId);
      assert.equal(full.state.count, 532);
      assert.equal(full.seen.size, 532);
      assert.deepEqual(errors, []);

      // The snapshot's instance is the fold of the events it covers, seen ids and all.
      const covered = await events.readStream(streamId, { to: 1002 });
      const folded = foldInstance(workflow, streamId, covered.events, 1002);
      const data = saved?.state as { state: Count; status: string; seen: string[] };
      assert.deepEqual(data.state, folded.state);
      assert.equal(data.status, 'active');
      assert.deepEqual(data.seen, [...folded.seen]);
    },
  },
  {
    name: 'workflow: a duplicate input is still recognised when the instance loads from a snapshot (seen ids carried)',
    async run({ snapshots, events }) {
      const workflow = counterWorkflow();
      const streamId = instanceStreamId(workflow, 'dup');
      const errors: Errors = [];
      const counting = countingStore(events);
      const handler = createWorkflowHandler(workflow, {
        store: counting.store,
        snapshots: options(snapshots, errors, { every: 50 }),
      });
      const first = tick('dup', 'tick-first');
      assert.equal(await handler.handle(first), 'recorded');
      await seedTicks(events, workflow, 'dup', 120);
      assert.equal(await handler.handle(tick('dup')), 'recorded');
      assert.equal((await snapshots.load(streamId, { name: 'workflow' }))?.version, 244);
      counting.reset();
      assert.equal(await handler.handle({ ...first, metadata: { ...first.metadata } }), 'duplicate');
      assert.deepEqual(counting.reads(), [244], 'decided from the snapshot: the first tick is far behind it');
      assert.equal(counting.eventsRead(), 1);
      assert.equal((await events.readStream(streamId, { from: Number.MAX_SAFE_INTEGER })).version, 244);
      assert.equal(handler.stats().duplicate, 1);
      assert.deepEqual(errors, []);
    },
  },
  {
    name: 'workflow: racing inputs with snapshots: each is recorded once and every snapshot is the fold of its events',
    async run({ snapshots, events }) {
      const workflow = counterWorkflow();
      const streamId = instanceStreamId(workflow, 'race');
      const errors: Errors = [];
      await seedTicks(events, workflow, 'race', 20);
      const handler = createWorkflowHandler(workflow, {
        store: events,
        snapshots: options(snapshots, errors, { every: 2 }),
      });
      assert.equal(await handler.handle(tick('race')), 'recorded');
      const outcomes = await Promise.all(Array.from({ length: 12 }, () => handler.handle(tick('race'))));
      assert.deepEqual(new Set(outcomes), new Set(['recorded']));
      const full = await loadInstance(events, workflow, streamId);
      assert.equal(full.version, 66);
      assert.equal(full.state.count, 33);
      const { events: stored } = await events.readStream(streamId);
      const counts = stored
        .filter((e) => e.type === T.sent)
        .map((e) => ((e.data as SentRecordData).message.data as { count: number }).count);
      assert.deepEqual(
        counts,
        Array.from({ length: 33 }, (_, i) => i + 1),
        'each decision saw the count before it',
      );
      const snapshot = await snapshots.load<InstanceSnapshotData>(streamId, { name: 'workflow' });
      assert.ok(snapshot && snapshot.version >= 60, `snapshot at ${snapshot?.version}`);
      const covered = foldInstance(workflow, streamId, stored.slice(0, snapshot.version), snapshot.version);
      assert.deepEqual(snapshot.state.state, covered.state);
      assert.deepEqual(snapshot.state.seen, [...covered.seen]);
      assert.equal(snapshot.lastEventId, stored[snapshot.version - 1]?.id);
      assert.deepEqual(errors, []);
    },
  },
  {
    name: 'workflow: a snapshot of another snapshot version is ignored; the instance is folded in full and the snapshot replaced',
    async run({ snapshots, events }) {
      const workflow = counterWorkflow();
      const streamId = instanceStreamId(workflow, 'bumped');
      const errors: Errors = [];
      await seedTicks(events, workflow, 'bumped', 100);
      const v1 = createWorkflowHandler(workflow, {
        store: events,
        snapshots: options(snapshots, errors, { every: 10 }),
      });
      assert.equal(await v1.handle(tick('bumped')), 'recorded');
      assert.equal((await snapshots.load(streamId, { name: 'workflow' }))?.version, 202);
      // A snapshot of version 1 holding a state no fold gives: version 2 must not use it.
      const planted = await snapshots.load(streamId, { name: 'workflow' });
      assert.ok(planted);
      const wrong = { ...(planted.state as object), state: { count: -1000, last: 'planted' } };
      await snapshots.save({ ...planted, state: wrong });

      const counting = countingStore(events);
      const v2 = createWorkflowHandler(workflow, {
        store: counting.store,
        snapshots: options(snapshots, errors, { every: 10, version: 2 }),
      });
      assert.equal(await v2.handle(tick('bumped')), 'recorded');
      assert.deepEqual(counting.reads(), [undefined], 'folded from the first event');
      assert.equal(await lastSentCount(events, streamId), 102);
      const replaced = await snapshots.load(streamId, { name: 'workflow' });
      assert.equal(replaced?.snapshotVersion, 2);
      assert.equal(replaced?.version, 204);
      // And the version-2 snapshot is the one used from then on.
      counting.reset();
      assert.equal(await v2.handle(tick('bumped')), 'recorded');
      assert.deepEqual(counting.reads(), [204]);
      assert.equal(await lastSentCount(events, streamId), 103);
      assert.deepEqual(errors, []);
    },
  },
  {
    name: 'workflow: a snapshot of an instance stream deleted and written again is not trusted (shorter or longer)',
    async run({ snapshots, events }) {
      const workflow = counterWorkflow();
      const errors: Errors = [];
      const counting = countingStore(events);
      const handler = createWorkflowHandler(workflow, {
        store: counting.store,
        snapshots: options(snapshots, errors, { every: 20 }),
      });
      for (const [instance, rewritten] of [
        ['shorter', 5],
        ['longer', 60],
      ] as const) {
        const streamId = instanceStreamId(workflow, instance);
        await seedTicks(events, workflow, instance, 30);
        assert.equal(await handler.handle(tick(instance)), 'recorded');
        assert.equal((await snapshots.load(streamId, { name: 'workflow' }))?.version, 62);
        await events.deleteStream(streamId);
        await seedTicks(events, workflow, instance, rewritten);
        counting.reset();
        assert.equal(await handler.handle(tick(instance)), 'recorded');
        assert.deepEqual(counting.reads(), [62, undefined], `${instance}: checked at its version, then read in full`);
        assert.equal(await lastSentCount(events, streamId), rewritten + 1);
        const after = await snapshots.load(streamId, { name: 'workflow' });
        // Deleted; the input that followed wrote a new one when it crossed a multiple of 20.
        assert.equal(after?.version, rewritten * 2 + 2 >= 20 ? rewritten * 2 + 2 : undefined);
      }
      assert.deepEqual(errors, []);
    },
  },
  {
    name: 'workflow: a failed snapshot save is reported and the input still commits; so is a state JSON cannot carry',
    async run({ snapshots, events }) {
      const errors: Errors = [];
      const failing: SnapshotStore = {
        load: (streamId, keyOptions) => snapshots.load(streamId, keyOptions),
        delete: (streamId, keyOptions) => snapshots.delete(streamId, keyOptions),
        save: async () => {
          throw new StorageError('snapshot table unavailable');
        },
      };
      const workflow = counterWorkflow();
      const handler = createWorkflowHandler(workflow, {
        store: events,
        snapshots: options(failing, errors, { every: 1 }),
      });
      assert.equal(await handler.handle(tick('failing')), 'recorded');
      assert.equal(await handler.handle(tick('failing')), 'recorded');
      const streamId = instanceStreamId(workflow, 'failing');
      assert.equal((await events.readStream(streamId)).version, 4, 'both inputs committed');
      assert.deepEqual(
        errors.map((e) => [e.context.operation, e.context.streamId, e.context.name, (e.error as Error).message]),
        [
          ['save', streamId, 'workflow', 'snapshot table unavailable'],
          ['save', streamId, 'workflow', 'snapshot table unavailable'],
        ],
      );

      // A state holding a Map: the snapshot store refuses it (ValidationError), told through the logger too.
      const warnings: unknown[] = [];
      const logger = {
        debug: () => {},
        info: () => {},
        warn: (obj: unknown) => warnings.push(obj),
        error: () => {},
      };
      const mapped = counterWorkflow({ mapped: true });
      const refused: Errors = [];
      const mappedHandler = createWorkflowHandler(mapped, {
        store: events,
        logger,
        snapshots: options(snapshots, refused, { every: 1 }),
      });
      assert.equal(await mappedHandler.handle(tick('mapped')), 'recorded');
      const mappedId = instanceStreamId(mapped, 'mapped');
      assert.equal((await events.readStream(mappedId)).version, 2);
      assert.equal(await snapshots.load(mappedId, { name: 'workflow' }), undefined, 'nothing stored');
      assert.equal(refused.length, 1);
      assert.equal(refused[0]?.context.operation, 'save');
      const refusal = refused[0]?.error;
      assert.ok(isValidationError(refusal), 'the snapshot store refused the state');
      assert.equal(refusal.issues[0]?.path, 'snapshot.state.state.tags');
      assert.equal(warnings.length, 1);
      // The next input folds the events again (no snapshot), and is recorded.
      assert.equal(await mappedHandler.handle(tick('mapped')), 'recorded');
      assert.equal(await lastSentCount(events, mappedId), 2);
    },
  },
  {
    name: 'workflow: a parked instance snapshotted while parked lists, retries and cancels as from its events',
    async run({ snapshots, events }) {
      const workflow = counterWorkflow();
      const streamId = instanceStreamId(workflow, 'parked');
      const errors: Errors = [];
      poisoned.failing = true;
      try {
        const handler = createWorkflowHandler(workflow, {
          store: events,
          snapshots: options(snapshots, errors, { every: 1 }),
        });
        assert.equal(await handler.handle(tick('parked')), 'recorded');
        const poison = createMessage({ type: 'Poison', data: { id: 'parked' } });
        assert.equal(await handler.handle(poison), 'parked');
        assert.equal(await handler.handle(tick('parked')), 'deferred');
        assert.equal(await handler.handle(poison), 'duplicate', 'the parked input is a seen id in the snapshot');
        const snapshot = await snapshots.load<InstanceSnapshotData>(streamId, { name: 'workflow' });
        assert.equal(snapshot?.version, 4);
        assert.equal(snapshot?.state.status, 'parked');

        const plain = createWorkflowHandler(workflow, { store: events });
        const listed = await handler.parked.list();
        const listedFromEvents = await plain.parked.list();
        assert.equal(listed.length, 1);
        assert.deepEqual(listed, listedFromEvents);
        assert.equal(listed[0]?.pending, 1);

        poisoned.failing = false;
        assert.equal(await handler.parked.retry('parked'), 'resumed');
        const resumed = await snapshots.load<InstanceSnapshotData>(streamId, { name: 'workflow' });
        assert.equal(resumed?.state.status, 'active');
        assert.equal(await handler.handle(tick('parked')), 'recorded');
        assert.equal(await lastSentCount(events, streamId), 3, 'the deferred tick was decided on retry');
        await handler.parked.cancel('parked', 'done testing');
        assert.equal(await handler.handle(tick('parked')), 'after-end');
        const full = await loadInstance(events, workflow, streamId);
        const cancelled = await snapshots.load(streamId, { name: 'workflow' });
        assert.equal(cancelled?.version, full.version);
        const data = cancelled?.state as { state: Count; status: string; seen: string[]; parked?: unknown };
        assert.deepEqual(data.state, full.state);
        assert.equal(data.status, 'cancelled');
        assert.equal(full.status, 'cancelled');
        assert.deepEqual(data.seen, [...full.seen]);
        assert.equal(data.parked, undefined);
        assert.deepEqual(errors, []);
      } finally {
        poisoned.failing = true;
      }
    },
  },
];
