import assert from 'node:assert/strict';
import { isConcurrencyError } from '../../errors/index.ts';
import { createMessage } from '../../messaging/message.ts';
import type { Event, EventStore } from '../../store/types.ts';
import { defineWorkflow, schedule } from '../../workflows/define.ts';
import { createWorkflowHandler } from '../../workflows/handler.ts';
import { uniqueCategory } from '../conformance/context.ts';
import type { TimerCaseContext, TimerConformanceCase } from './context.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const msg = (type: string, data: Record<string, unknown>) => createMessage({ type, data });
const set = (id: string, token: string, at: number) => msg('Set', { id, token, at });

/** The due timers of this case's workflow only (a shared backend holds others). */
const dueOf = async (context: TimerCaseContext, workflow: string, now: number) =>
  (await context.timers.due(now, 10_000)).filter((timer) => timer.workflow === workflow);

export const timerCases: readonly TimerConformanceCase[] = [
  {
    name: 'a timer is pending once its decision committed, and due from its due time, earliest first',
    async run(context) {
      const { definition, handler } = context.workflow();
      await handler.handle(set('b', 'x', T0 + 2000));
      await handler.handle(set('a', 'x', T0 + 1000));
      await handler.handle(set('c', 'x', T0 + 3000));
      assert.deepEqual(await dueOf(context, definition.name, T0), []);
      const due = await dueOf(context, definition.name, T0 + 2000);
      assert.deepEqual(
        due.map((t) => [t.streamId, t.token, t.dueAt]),
        [
          [`${definition.name}-a`, 'x', T0 + 1000],
          [`${definition.name}-b`, 'x', T0 + 2000],
        ],
      );
      assert.deepEqual(due[0]?.message, { type: 'Due', data: { id: 'a', token: 'x' } });
      assert.equal(due[0]?.workflow, definition.name);
      assert.ok((await context.timers.nextDueAt()) !== undefined);
      assert.ok((await context.timers.pendingCount()) >= 3);
      const limited = await context.timers.due(T0 + 3000, 1);
      assert.equal(limited.length, 1);
    },
  },
  {
    name: 'a cancel removes the token’s timer; a new schedule of a token replaces it; other tokens stay',
    async run(context) {
      const { definition, handler } = context.workflow();
      await handler.handle(set('i', 'a', T0 + 1000));
      await handler.handle(set('i', 'b', T0 + 1000));
      await handler.handle(set('i', 'a', T0 + 5000));
      let due = await dueOf(context, definition.name, T0 + 10_000);
      assert.deepEqual(due.map((t) => [t.token, t.dueAt]).sort(), [
        ['a', T0 + 5000],
        ['b', T0 + 1000],
      ]);
      await handler.handle(msg('Cancel', { id: 'i', token: 'b' }));
      due = await dueOf(context, definition.name, T0 + 10_000);
      assert.deepEqual(
        due.map((t) => t.token),
        ['a'],
      );
    },
  },
  {
    name: 'a fired timer’s recorded input removes it; the instance’s end removes all of its timers',
    async run(context) {
      const { definition, handler } = context.workflow();
      await handler.handle(set('i', 'a', T0 + 1000));
      await handler.handle(set('i', 'b', T0 + 2000));
      await handler.handle(set('j', 'a', T0 + 1000));
      const [first] = await dueOf(context, definition.name, T0 + 1000);
      assert.ok(first);
      assert.equal(await handler.fireTimer(first), 'recorded');
      assert.equal(await handler.fireTimer(first), 'duplicate', 'a second firing collapses');
      assert.equal((await dueOf(context, definition.name, T0 + 10_000)).length, 2);
      await handler.handle(msg('End', { id: 'i' }));
      await handler.handle(msg('End', { id: 'j' }));
      assert.deepEqual(await dueOf(context, definition.name, T0 + 10_000), []);
    },
  },
  {
    name: 'a decision that fails to commit schedules nothing',
    async run(context) {
      const { definition } = context.workflow();
      const streamId = `${definition.name}-i`;
      await context.store.append(streamId, [{ type: 'Other', data: {} }]);
      await assert.rejects(
        context.store.append(
          streamId,
          [{ type: '$workflow.timer-scheduled', data: { token: 't', dueAt: T0, message: { type: 'Due', data: {} } } }],
          { expectedVersion: 0 },
        ),
        isConcurrencyError,
      );
      assert.deepEqual(await dueOf(context, definition.name, T0 + 1), []);
    },
  },
  {
    name: 'start messages racing for one instance yield one instance; each is recorded once',
    async run(context) {
      const { definition, handler } = context.workflow();
      const racing = Array.from({ length: 8 }, (_, i) => set('race', 'x', T0 + i));
      const outcomes = await Promise.all(racing.map((message) => handler.handle(message)));
      assert.ok(outcomes.every((outcome) => outcome === 'recorded'));
      const { events } = await context.store.readStream(`${definition.name}-race`);
      const inputs = events.filter((e) => e.type === '$workflow.input');
      assert.equal(inputs.length, 8);
      assert.deepEqual(
        new Set(inputs.map((e) => (e.data as { message: { id: string } }).message.id)),
        new Set(racing.map((m) => m.id)),
      );
      assert.equal((await dueOf(context, definition.name, T0 + 100)).length, 1, 'one timer of the token');
    },
  },
  {
    name: 'a batch fires together: each timer recorded once, an instance’s timers in order, a repeat collapses, a timer of an ended instance is dropped and counted',
    async run(context) {
      const { definition, handler } = context.workflow();
      await handler.handle(set('i', 'a', T0 + 1000));
      await handler.handle(set('i', 'b', T0 + 1500));
      await handler.handle(set('j', 'a', T0 + 1000));
      await handler.handle(set('k', 'a', T0 + 1200));
      await handler.handle(set('ended', 'a', T0 + 1000));
      const due = await dueOf(context, definition.name, T0 + 2000);
      assert.equal(due.length, 5);
      await handler.handle(msg('End', { id: 'ended' }));
      const first = due.find((t) => t.streamId === `${definition.name}-i` && t.token === 'a');
      assert.ok(first);
      // The same timer twice in one batch: the second collapses.
      const firings = await handler.fireTimers([...due, first]);
      assert.deepEqual(
        firings.map((f) => f.timer.timerId),
        [...due, first].map((t) => t.timerId),
        'one firing per timer, in the order given',
      );
      const outcomeOf = (f: (typeof firings)[number]) =>
        `${f.timer.streamId.slice(definition.name.length + 1)}/${f.timer.token}:${f.outcome ?? String(f.error)}`;
      assert.deepEqual(
        firings.map(outcomeOf).sort(),
        [
          'i/a:duplicate',
          'ended/a:timer-dropped',
          'i/a:recorded',
          'i/b:recorded',
          'j/a:recorded',
          'k/a:recorded',
        ].sort(),
      );
      assert.equal(handler.stats()['timer-dropped'], 1);
      const fired = (await context.store.readStream(`${definition.name}-i`)).events
        .filter((e) => e.type === '$workflow.input' && (e.data as { timer?: unknown }).timer)
        .map((e) => (e.data as { timer: { token: string } }).timer.token);
      assert.deepEqual(fired, ['a', 'b'], 'the instance’s timers recorded in due order, once each');
      // A later batch repeating them (a second poller, a crash before the removal) collapses.
      const again = await handler.fireTimers(due);
      assert.deepEqual(
        again.map((f) => f.outcome),
        due.map((t) => (t.streamId.endsWith('-ended') ? 'timer-dropped' : 'duplicate')),
      );
      assert.deepEqual(await dueOf(context, definition.name, T0 + 10_000), []);
    },
  },
  {
    name: 'in a batch, an instance whose decision fails or whose append conflicts is handled alone; the others commit',
    async run(context) {
      const { definition } = context.workflow();
      const raced = `${definition.name}-raced`;
      let race: (() => Promise<unknown>) | undefined;
      // The batch's append to `raced` finds that another input was recorded meanwhile: a conflict.
      const store: EventStore = Object.create(context.store, {
        append: {
          value: async (...args: Parameters<EventStore['append']>) => {
            const before = args[0] === raced ? race : undefined;
            if (before) {
              race = undefined;
              await before();
            }
            return context.store.append(...args);
          },
        },
      });
      const failing = createWorkflowHandler(
        {
          ...definition,
          decide: (input, state) => {
            if (input.type === 'Due' && input.data.id === 'bad') throw new Error('the payment service is down');
            return definition.decide(input, state);
          },
        },
        { store },
      );
      for (const id of ['a', 'bad', 'raced', 'b']) await failing.handle(set(id, 'x', T0 + 1000));
      race = () => failing.handle(set('raced', 'y', T0 + 60_000));
      const due = await dueOf(context, definition.name, T0 + 1000);
      assert.equal(due.length, 4);
      const firings = await failing.fireTimers(due);
      const byId = new Map(firings.map((f) => [f.timer.streamId.slice(definition.name.length + 1), f]));
      assert.equal(byId.get('a')?.outcome, 'recorded');
      assert.equal(byId.get('b')?.outcome, 'recorded');
      assert.equal(byId.get('raced')?.outcome, 'recorded', 'retried alone after its conflict');
      assert.equal(byId.get('bad')?.outcome, undefined);
      assert.match(String((byId.get('bad')?.error as Error | undefined)?.message), /payment service is down/);
      const left = await dueOf(context, definition.name, T0 + 1000);
      assert.deepEqual(
        left.map((t) => t.streamId),
        [`${definition.name}-bad`],
        'only the failed one stays pending',
      );
      const { events } = await context.store.readStream(raced);
      assert.deepEqual(
        events
          .filter((e) => e.type === '$workflow.input')
          .map((e) => (e.data as { message: { type: string } }).message.type),
        ['Set', 'Set', 'Due'],
        'the racing input, then the fired timer',
      );
    },
  },
  {
    name: 'a timer `afterMs` a fraction of a millisecond away is due from the next whole millisecond',
    async run(context) {
      const definition = defineWorkflow<unknown, Event<'Back', { id: string; attempt: number }>>({
        name: uniqueCategory('timers'),
        inputs: ['Back'],
        start: ['Back'],
        correlate: (input) => input.data.id,
        initialState: () => null,
        evolve: (state) => state,
        decide: (input) =>
          schedule({
            token: 'retry',
            afterMs: 1000 * (1 + input.data.attempt / 3),
            message: { type: 'Back', data: { id: input.data.id, attempt: input.data.attempt + 1 } },
          }),
      });
      const handler = createWorkflowHandler(definition, { store: context.store, now: () => T0 });
      assert.equal(await handler.handle(msg('Back', { id: 'i', attempt: 1 })), 'recorded');
      assert.deepEqual(await dueOf(context, definition.name, T0 + 1333), []);
      const [timer] = await dueOf(context, definition.name, T0 + 1334);
      assert.equal(timer?.dueAt, T0 + 1334);
    },
  },
  {
    name: 'a schedule whose token is over 256 characters parks the instance on its input, naming the output; one of 256 is kept',
    async run(context) {
      const { definition, handler } = context.workflow();
      // Text of 3 UTF-8 bytes a character that does not compress: the most an index row of the token takes.
      let seed = 7;
      const text = (length: number) =>
        Array.from({ length }, () => {
          seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
          return String.fromCharCode(0x4e00 + ((seed >>> 12) % 0x5000));
        }).join('');
      const id = text(150);
      const longest = text(256);
      assert.equal(await handler.handle(set(id, longest, T0)), 'recorded');
      const [kept, ...others] = await dueOf(context, definition.name, T0);
      assert.deepEqual([kept?.streamId, kept?.token, others.length], [`${definition.name}-${id}`, longest, 0]);
      for (const [instance, length] of [
        ['far-over', 1000],
        ['over', 257],
      ] as const) {
        assert.equal(await handler.handle(set(instance, text(length), T0)), 'parked', `a token of ${length}`);
        const [parked] = (await handler.parked.list()).filter((p) => p.instanceId === instance);
        assert.equal(parked?.error.code, 'VALIDATION');
        assert.equal(
          parked?.error.message,
          `outputs[0].token: is ${length} characters long; the limit is 256`,
          `a token of ${length}`,
        );
      }
      assert.equal((await dueOf(context, definition.name, T0)).length, 1, 'no timer of a parked instance');
    },
  },
  {
    name: 'remove drops a timer by id',
    async run(context) {
      const { definition, handler } = context.workflow();
      await handler.handle(set('i', 'a', T0));
      const [timer] = await dueOf(context, definition.name, T0);
      assert.ok(timer);
      await context.timers.remove(timer.timerId);
      assert.deepEqual(await dueOf(context, definition.name, T0), []);
    },
  },
  {
    name: 'pending timers survive a restart and fire once after it, late rather than never',
    skip: (environment) => (environment.reopen ? undefined : 'the backend keeps nothing across a restart'),
    async run(context) {
      const { definition, handler } = context.workflow();
      for (let i = 0; i < 50; i++) await handler.handle(set(`i${i}`, 'a', T0 + i));
      const reopened = await (context.reopen as NonNullable<typeof context.reopen>)();
      const revived = createWorkflowHandler(definition, { store: reopened.store });
      const due = await dueOf({ ...context, ...reopened }, definition.name, T0 + 60_000);
      assert.equal(due.length, 50);
      for (const timer of due) assert.equal(await revived.fireTimer(timer), 'recorded');
      assert.deepEqual(await dueOf({ ...context, ...reopened }, definition.name, T0 + 60_000), []);
      let fired = 0;
      for await (const event of reopened.store.readAll({ categories: [definition.name], types: ['$workflow.input'] })) {
        if ((event.data as { timer?: unknown }).timer) fired++;
      }
      assert.equal(fired, 50, 'each timer recorded once');
    },
  },
];
