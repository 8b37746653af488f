import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidationError } from '../errors/index.ts';
import { getInMemoryEventStore } from '../store/in-memory.ts';
import { currentMessageContext, runInMessageContext } from './context.ts';
import { createEventBus } from './event-bus.ts';
import { getInMemoryTransport } from './in-memory-transport.ts';
import { createMessage, messageFromEvent, prepareMessages } from './message.ts';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('messages', () => {
  it('get an id, a key, headers and a correlation of their own by default', () => {
    const message = createMessage({ type: 'OrderPlaced', data: { total: 30 } }, () => 1_000);
    assert.match(message.id, /^[0-9a-f-]{36}$/);
    assert.equal(message.key, message.id);
    assert.deepEqual(message.headers, {});
    assert.deepEqual(message.metadata, { correlationId: message.id });
    assert.equal(message.createdAt.getTime(), 1_000);
    const keyed = createMessage({ type: 'OrderPlaced', data: {}, key: 'order-1', metadata: { correlationId: 'c-9' } });
    assert.equal(keyed.key, 'order-1');
    assert.equal(keyed.metadata.correlationId, 'c-9');
  });

  it('reject bad input with every problem listed', () => {
    assert.throws(
      () =>
        createMessage({
          type: '',
          data: undefined,
          key: '',
          headers: { n: 1 as unknown as string },
          deliverAt: new Date(Number.NaN),
        }),
      (error: unknown) =>
        isValidationError(error) &&
        ['type', 'key', 'headers.n', 'deliverAt', 'data'].every((path) => error.issues.some((i) => i.path === path)),
    );
  });

  it('refuse what JSON cannot carry faithfully and ill-formed names, as events do', () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ data: { ratio: Number.NaN } }, 'data.ratio', /NaN/],
      [{ data: [undefined] }, 'data[0]', /undefined/],
      [{ data: new Map([['a', 1]]) }, 'data', /Map/],
      [{ data: () => 1 }, 'data', /function/],
      [{ data: { amount: 5n } }, 'data.amount', /BigInt/],
      [{ type: 'Order\u0000Placed' }, 'type', /control characters/],
      [{ type: undefined }, 'type', /^must be a string, got undefined$/],
      [{ key: 'acct-\uD800' }, 'key', /lone surrogate \(U\+D800 at index 5\)/],
      [{ data: { note: 'a\u0000b' } }, 'data.note', /U\+0000/],
      [{ metadata: { tenant: '\u0000' } }, 'metadata.tenant', /U\+0000/],
      [{ headers: { 'x-note': 'a\u0000' } }, 'headers.x-note', /U\+0000/],
      [
        { metadata: { correlationId: 'c'.repeat(257) } },
        'metadata.correlationId',
        /^is 257 characters long; the limit is 256$/,
      ],
      [
        { metadata: { causationId: 'c'.repeat(300) } },
        'metadata.causationId',
        /^is 300 characters long; the limit is 256$/,
      ],
      [{ metadata: { traceparent: 'a\nb' } }, 'metadata.traceparent', /^must not contain control characters$/],
      [{ data: { title: { toJSON: () => 'a\uD800' } } }, 'data.title', /lone surrogate/],
      [{ data: JSON.parse(`${'['.repeat(3000)}${']'.repeat(3000)}`) }, `data${'[0]'.repeat(256)}`, /256 levels/],
      [{ metadata: { tenant: new Set() } }, 'metadata.tenant', /Set/],
      [{ metadata: new Map() }, 'metadata', /^must be a plain object, got a Map$/],
      [{ headers: { n: 1 } }, 'headers.n', /^must be a string, got number 1$/],
      // A misspelt field is a mistake, not ignored: `deliverat` would send the message at once.
      [
        { deliverat: new Date() },
        'deliverat',
        /^is not a field of a message \(type, data, id, key, metadata, headers, deliverAt\)$/,
      ],
    ];
    for (const [change, path, message] of cases) {
      assert.throws(
        () => createMessage({ type: 'OrderPlaced', data: {}, ...change } as never),
        (error: unknown) =>
          isValidationError(error) && error.issues[0]?.path === path && message.test(error.issues[0]?.message),
        `${path} ${message}`,
      );
    }
    // Surrogate pairs are well-formed text.
    assert.equal(createMessage({ type: 'Shipped🚚', data: { note: '📦' }, key: 'k-😀' }).key, 'k-😀');
  });

  it('refuse data and metadata over 1 MiB serialized, as events do', () => {
    assert.throws(() => createMessage({ type: 'Big', data: 'x'.repeat(1024 * 1024) }), {
      code: 'VALIDATION',
      message: /bytes serialized \(data and metadata\); the limit is 1048576/,
    });
    assert.throws(
      () => createMessage({ type: 'Big', data: 'x'.repeat(600 * 1024), metadata: { note: 'y'.repeat(600 * 1024) } }),
      { code: 'VALIDATION' },
    );
    // Under the limit, even where the quick bound (6 bytes a character) is over it.
    assert.equal(createMessage({ type: 'Fits', data: 'é'.repeat(500 * 1024) }).type, 'Fits');
    assert.equal(createMessage({ type: 'Fits', data: { at: new Date(0) } }).type, 'Fits');
  });

  it('prepareMessages checks every message, built ones included, and lists every problem at once', () => {
    const built = { ...createMessage({ type: 'Built', data: {} }), data: { at: Number.POSITIVE_INFINITY } };
    assert.throws(
      () =>
        prepareMessages([
          { type: 'A', data: { n: 1n } },
          built,
          { type: '', data: {} },
          { type: 'B', data: {}, delay: 5000 } as never,
        ]),
      (error: unknown) =>
        isValidationError(error) &&
        error.issues.map((i) => i.path).join() ===
          'messages[0].data.n,messages[1].data.at,messages[2].type,messages[3].delay',
    );
  });

  it('the event bus and the in-memory transport refuse them too', async () => {
    const transport = getInMemoryTransport();
    const bus = createEventBus({ transport });
    await assert.rejects(bus.publish('OrderPlaced', { total: Number.NaN }), { code: 'VALIDATION' });
    const message = { ...createMessage({ type: 'A', data: {} }), data: { list: [undefined] } };
    await assert.rejects(transport.publish('orders', [message]), (error: unknown) => {
      return isValidationError(error) && error.issues[0]?.path === 'messages[0].data.list[0]';
    });
    await transport.close();
  });

  it('travel as their event: key = stream id, id = event id, position in the headers', async () => {
    const store = getInMemoryEventStore();
    const { events } = await store.append('order-7', [{ type: 'OrderPlaced', data: { total: 1 } }]);
    const message = messageFromEvent(events[0] as (typeof events)[number]);
    assert.equal(message.key, 'order-7');
    assert.equal(message.id, events[0]?.id);
    assert.equal(message.headers['factline-position'], String(events[0]?.position));
  });
});

describe('correlation across hops', () => {
  it('three hops: messages and events inherit the correlation id and name their cause, across awaits', async () => {
    const store = getInMemoryEventStore();
    const a = createMessage({ type: 'PlaceOrder', data: {} }); // arrives without a correlation: starts one
    const b = await runInMessageContext(a, async () => {
      await tick();
      await store.append('order-1', [{ type: 'OrderPlaced', data: {} }]);
      return createMessage({ type: 'ReserveStock', data: {} });
    });
    const c = await runInMessageContext(b, async () => {
      await tick();
      await store.append('stock-1', [{ type: 'StockReserved', data: {} }]);
      return createMessage({ type: 'ChargeCard', data: {} });
    });
    await runInMessageContext(c, async () => {
      await store.append('payment-1', [{ type: 'CardCharged', data: {} }]);
    });
    assert.deepEqual([b.metadata.correlationId, b.metadata.causationId], [a.id, a.id]);
    assert.deepEqual([c.metadata.correlationId, c.metadata.causationId], [a.id, b.id]);
    const events = [];
    for await (const event of store.readAll()) events.push(event);
    assert.deepEqual(
      events.map((e) => [e.type, e.metadata.correlationId, e.metadata.causationId]),
      [
        ['OrderPlaced', a.id, a.id],
        ['StockReserved', a.id, b.id],
        ['CardCharged', a.id, c.id],
      ],
    );
  });

  it('explicit metadata wins; concurrent handlers keep their own context; outside one a root event correlates itself', async () => {
    const store = getInMemoryEventStore();
    const one = createMessage({ type: 'One', data: {}, metadata: { correlationId: 'corr-1' } });
    const two = createMessage({ type: 'Two', data: {}, metadata: { correlationId: 'corr-2' } });
    await Promise.all([
      runInMessageContext(one, async () => {
        await tick();
        assert.equal(currentMessageContext()?.messageId, one.id);
        await store.append('s-1', [{ type: 'X', data: {} }]);
      }),
      runInMessageContext(two, async () => {
        await store.append('s-2', [{ type: 'Y', data: {}, metadata: { causationId: 'mine' } }]);
        await tick();
        assert.equal(currentMessageContext()?.correlationId, 'corr-2');
      }),
    ]);
    assert.equal(currentMessageContext(), undefined);
    const [x] = (await store.readStream('s-1')).events;
    const [y] = (await store.readStream('s-2')).events;
    assert.deepEqual(x?.metadata, { correlationId: 'corr-1', causationId: one.id });
    assert.deepEqual(y?.metadata, { causationId: 'mine', correlationId: 'corr-2' });
    // Outside a handler an event with no correlation id starts an operation: its own id correlates it.
    const outside = await store.append('s-3', [{ type: 'Z', data: {} }]);
    assert.deepEqual(outside.events[0]?.metadata, { correlationId: outside.events[0]?.id });
  });
});
