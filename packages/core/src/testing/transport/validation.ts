import assert from 'node:assert/strict';
import type { ValidationError } from '../../errors/index.ts';
import type { Message } from '../../messaging/message.ts';
import type { Subscription } from '../../messaging/transport.ts';
import { rejectsWithCode } from '../conformance/context.ts';
import { ids, type TransportCaseContext, type TransportConformanceCase } from './context.ts';

/** A message as a transport takes it, with `change` applied past `createMessage`'s checks. */
const tampered = (context: TransportCaseContext, change: Record<string, unknown>): Message =>
  ({ ...context.message(), ...change }) as Message;

/** Every bad message a transport must refuse, with the path its first issue names. */
function badMessages(context: TransportCaseContext): [string, Message, string][] {
  const withHeaders = context.message();
  return [
    ['NaN in data', tampered(context, { data: { ratio: Number.NaN } }), 'messages[0].data.ratio'],
    ['undefined in an array', tampered(context, { data: { list: [1, undefined] } }), 'messages[0].data.list[1]'],
    ['a Map', tampered(context, { data: { byId: new Map([['a', 1]]) } }), 'messages[0].data.byId'],
    ['a function as data', tampered(context, { data: () => 1 }), 'messages[0].data'],
    ['a BigInt', tampered(context, { data: { amount: 10n } }), 'messages[0].data.amount'],
    ['no data', tampered(context, { data: undefined }), 'messages[0].data'],
    ['NUL in the type', tampered(context, { type: 'Order\u0000Placed' }), 'messages[0].type'],
    ['a lone surrogate in the type', tampered(context, { type: 'Order\uD800' }), 'messages[0].type'],
    ['a lone surrogate in the key', tampered(context, { key: 'acct-\uDBFF' }), 'messages[0].key'],
    ['a lone surrogate in the id', tampered(context, { id: 'm-\uDC00' }), 'messages[0].id'],
    ['a lone surrogate in data', tampered(context, { data: { name: 'a\uD800b' } }), 'messages[0].data.name'],
    ['a lone surrogate in a data key', tampered(context, { data: { 'k\uD800': 1 } }), 'messages[0].data'],
    [
      'a lone surrogate in a metadata value',
      tampered(context, { metadata: { tenant: '\uDFFF' } }),
      'messages[0].metadata.tenant',
    ],
    [
      'a lone surrogate in a header',
      { ...withHeaders, headers: { 'x-name': 'a\uD800' } },
      'messages[0].headers.x-name',
    ],
    ['a NUL in data', tampered(context, { data: { name: 'a\u0000b' } }), 'messages[0].data.name'],
    ['a NUL in a data key', tampered(context, { data: { 'k\u0000': 1 } }), 'messages[0].data'],
    ['a NUL in a metadata value', tampered(context, { metadata: { tenant: '\u0000' } }), 'messages[0].metadata.tenant'],
    ['a NUL in a header', { ...withHeaders, headers: { 'x-name': 'a\u0000' } }, 'messages[0].headers.x-name'],
    [
      'a correlationId over 256 characters',
      tampered(context, { metadata: { correlationId: 'c'.repeat(257) } }),
      'messages[0].metadata.correlationId',
    ],
    [
      'a causationId over 256 characters',
      tampered(context, { metadata: { causationId: 'c'.repeat(257) } }),
      'messages[0].metadata.causationId',
    ],
    [
      'a control character in the correlationId',
      tampered(context, { metadata: { correlationId: 'a\nb' } }),
      'messages[0].metadata.correlationId',
    ],
    ['a header that is not a string', tampered(context, { headers: { n: 1 } }), 'messages[0].headers.n'],
    ['an empty key', tampered(context, { key: '' }), 'messages[0].key'],
    ['an invalid createdAt', tampered(context, { createdAt: new Date(Number.NaN) }), 'messages[0].createdAt'],
  ];
}

/** Publishes a marker and asserts it is the only thing the group receives: nothing before it was written. */
async function onlyMarkerArrives(context: TransportCaseContext, subscription: Subscription, topic: string) {
  const marker = context.message();
  await context.transport.publish(topic, [marker]);
  const got = await context.receiveAtLeast(subscription, 1);
  assert.deepEqual(ids(got), [marker.id], 'a refused message was written');
  await Promise.all(got.map((d) => d.ack()));
  // Receives once more with a short wait: a refused message must not turn up behind the marker either.
  const rest = await subscription.receive(10, 100, new AbortController().signal);
  assert.deepEqual(ids(rest), [], 'a refused message was written');
}

/** Transport cases on what a publish or redeliver refuses: the same ValidationError on every transport. */
export const validationCases: readonly TransportConformanceCase[] = [
  {
    name: 'a message JSON cannot carry faithfully, or with an ill-formed name, is a ValidationError naming it; nothing of the batch is written',
    async run(context) {
      const topic = context.topic();
      const group = context.group();
      const sub = context.transport.subscribe(topic, group);
      for (const [what, bad, path] of badMessages(context)) {
        const alone = await rejectsWithCode<ValidationError>(context.transport.publish(topic, [bad]), 'VALIDATION');
        assert.equal(alone.issues[0]?.path, path, `${what}: ${alone.message}`);
        const batch = await rejectsWithCode<ValidationError>(
          context.transport.publish(topic, [context.message(), bad]),
          'VALIDATION',
        );
        assert.equal(batch.issues[0]?.path, path.replace('messages[0]', 'messages[1]'), `${what} in a batch`);
        const redelivered = await rejectsWithCode<ValidationError>(
          context.transport.redeliver(topic, group, [bad]),
          'VALIDATION',
        );
        assert.equal(redelivered.issues[0]?.path, path, `${what} redelivered`);
      }
      await onlyMarkerArrives(context, sub, topic);
    },
  },
  {
    name: 'one ValidationError lists every problem of a batch',
    async run(context) {
      const topic = context.topic();
      const error = await rejectsWithCode<ValidationError>(
        context.transport.publish(topic, [
          tampered(context, { data: { a: Number.NaN, b: 1n } }),
          tampered(context, { type: '' }),
        ]),
        'VALIDATION',
      );
      assert.deepEqual(
        error.issues.map((issue) => issue.path),
        ['messages[0].data.a', 'messages[0].data.b', 'messages[1].type'],
      );
    },
  },
  {
    name: 'topic and group names with a control character or a lone surrogate are ValidationErrors',
    async run(context) {
      const message = context.message();
      for (const name of ['', 'orders\u0000x', 'orders\uD800', 'tab\there']) {
        await rejectsWithCode(context.transport.publish(name, [message]), 'VALIDATION');
        await rejectsWithCode(context.transport.redeliver(context.topic(), name, [message]), 'VALIDATION');
        assert.throws(() => context.transport.subscribe(name, context.group()), { code: 'VALIDATION' });
        assert.throws(() => context.transport.subscribe(context.topic(), name), { code: 'VALIDATION' });
      }
    },
  },
  {
    name: 'text outside the BMP (surrogate pairs) arrives exactly as published',
    async run(context) {
      const topic = context.topic('🚚');
      const sub = context.transport.subscribe(topic, context.group('📦'));
      const message = context.message({
        type: 'Shipped🚚',
        key: 'parcel-𝄞',
        data: { note: 'fragile 📦', '𝄞key': ['😀'] },
        metadata: { who: '👩‍💻' },
        headers: { 'x-emoji': '🎉' },
      });
      await context.transport.publish(topic, [message]);
      const got = await context.receiveAtLeast(sub, 1);
      assert.deepEqual(got[0]?.message, message);
      await Promise.all(got.map((d) => d.ack()));
    },
  },
  {
    name: 'a closed transport says so: "The transport is closed"',
    async run(context) {
      const topic = context.topic();
      await context.transport.close();
      const error = await rejectsWithCode<Error>(context.transport.publish(topic, [context.message()]), 'STORE_CLOSED');
      assert.equal(error.message, 'The transport is closed');
    },
  },
];
