import { after, describe, it } from 'node:test';
import { type Consumer, createConsumer } from '../messaging/consumer.ts';
import { defaultRetryPolicy, isPromiseLike } from '../messaging/consumer-ports.ts';
import type { Transport } from '../messaging/transport.ts';
import { uniqueCategory } from './conformance/context.ts';
import {
  type ConsumerConformanceCase,
  type ConsumerEnvironment,
  type ConsumerRequirement,
  consumerConformanceCases,
  consumerSkipReasons,
} from './consumer/index.ts';
import { caseOutage, type OutageHook } from './outage.ts';
import { unmet } from './requirements.ts';

export {
  type ConsumerCaseContext,
  type ConsumerConformanceCase,
  type ConsumerEnvironment,
  type ConsumerRequirement,
  consumerConformanceCases,
  consumerSkipReasons,
} from './consumer/index.ts';

export interface ConsumerConformanceOptions<Tx = undefined> {
  /** Shown in the test names, e.g. `'sqlite (transport + inbox)'`. */
  name: string;
  /** Once per case; closed when the case ends. May share storage with other cases (names are unique per case). */
  createEnvironment: () => Promise<ConsumerEnvironment<Tx>>;
  /** The inbox commits the handler's writes with its mark (the SQL inboxes). */
  transactional?: boolean;
  /** Handlers must not await (the SQLite inbox runs them inside a synchronous transaction). */
  synchronousHandlers?: boolean;
  /** Handlers run one at a time, whatever the consumer's concurrency (an inbox with group commit). */
  handlersTakeTurns?: boolean;
  /**
   * Restarts the backend (the server or broker, never a shared one) and
   * resolves once it accepts connections again. Without it the restart
   * cases are skipped with the reason.
   */
  restart?: () => Promise<void>;
  /**
   * Stops the backend (a server the test owns, never a shared one) and
   * resolves once it refuses connections, with a call that starts it again
   * and resolves once it accepts them. Without it the cases of a backend gone
   * for good are skipped with the reason.
   */
  outage?: OutageHook;
  /**
   * Registers only the cases that need every one of these: a second, narrower
   * run of the suite in another set-up (e.g. the cases that need handlers
   * that await, where the main run's inbox wants synchronous ones).
   */
  only?: readonly ConsumerRequirement[];
  teardown?: () => Promise<void> | void;
  skip?: string | false;
}

/**
 * Registers the consumer pipeline's conformance cases with `node:test`: the
 * pipeline's promises (duplicates, retries, dead letters and redrive, per-key
 * order, correlation, shutdown, restarts) on the given transport, inbox and
 * dead-letter store, grouped by topic. A case the environment cannot run
 * (synchronous handlers, no transactional inbox, a transport that is not
 * durable, no restart or outage hook) is skipped with the reason.
 *
 * @example
 * testConsumerConformance({ name: 'in-memory', createEnvironment: async () => ({ transport, writeEffect, effects, close }) });
 */
export function testConsumerConformance<Tx = undefined>(options: ConsumerConformanceOptions<Tx>): void {
  const transactional = options.transactional ?? false;
  const synchronousHandlers = options.synchronousHandlers ?? false;
  const fromOptions: Partial<Record<ConsumerRequirement, boolean>> = {
    asyncHandlers: !synchronousHandlers,
    transactional,
    restart: options.restart !== undefined,
    outage: options.outage !== undefined,
  };
  describe(`Consumer conformance: ${options.name}`, { skip: options.skip || false }, () => {
    after(async () => {
      await options.teardown?.();
    });
    for (const [topic, cases] of Object.entries(consumerConformanceCases)) {
      const registered = cases.filter(wanted);
      if (registered.length === 0) continue;
      describe(topic, () => {
        for (const conformanceCase of registered) register(conformanceCase);
      });
    }
  });

  /** In this run: every case, or with `only` those that need all of its requirements. */
  function wanted(conformanceCase: ConsumerConformanceCase): boolean {
    return options.only?.every((r) => conformanceCase.requires?.includes(r)) ?? true;
  }

  function register(conformanceCase: ConsumerConformanceCase): void {
    // What the options lack is known now; what the environment lacks once one is created.
    const skip = unmet(conformanceCase.requires, (r) => fromOptions[r] ?? true, consumerSkipReasons) ?? false;
    it(conformanceCase.name, { skip }, async (t) => {
      // Closed once, whether the case closed it already or not.
      const once = (env: ConsumerEnvironment<Tx>): ConsumerEnvironment<Tx> => {
        let closing: Promise<void> | undefined;
        return { ...env, close: () => (closing ??= env.close()) };
      };
      const environment = once(await options.createEnvironment());
      const reopened: ConsumerEnvironment<Tx>[] = [];
      const consumers: Consumer[] = [];
      const peers: Transport[] = [];
      const topic = uniqueCategory('topic');
      const outage = caseOutage(options.outage);
      try {
        const durable = environment.transport.capabilities.durable;
        const fromEnvironment: Partial<Record<ConsumerRequirement, boolean>> = {
          inbox: environment.inbox !== undefined,
          durable,
          volatile: !durable,
        };
        const lacking = unmet(conformanceCase.requires, (r) => fromEnvironment[r] ?? true, consumerSkipReasons);
        if (lacking !== undefined) {
          t.skip(lacking);
          return;
        }
        await conformanceCase.run({
          environment,
          transactional,
          synchronousHandlers,
          handlersTakeTurns: options.handlersTakeTurns ?? false,
          topic,
          consumer(overrides) {
            const consumer = createConsumer<Tx>({
              name: uniqueCategory('consumer'),
              topic,
              transport: environment.transport,
              pollMs: 20,
              retryPolicy: defaultRetryPolicy({ immediate: 1, delaysMs: [5, 5], jitter: 0 }),
              ...(environment.inbox ? { inbox: environment.inbox } : {}),
              ...(environment.deadLetters ? { deadLetters: environment.deadLetters } : {}),
              ...overrides,
            });
            consumers.push(consumer);
            return consumer;
          },
          andThen: (result, next) => (isPromiseLike(result) ? Promise.resolve(result).then(next) : next()),
          publish(target, messages) {
            const publishing = environment.transport.publish(target, messages);
            if (!synchronousHandlers) return publishing;
            publishing.catch(() => undefined);
            return undefined;
          },
          async peerTransport() {
            if (!environment.peerTransport) return environment.transport;
            const peer = await environment.peerTransport();
            peers.push(peer);
            return peer;
          },
          async reopen() {
            const next = once(await options.createEnvironment());
            reopened.push(next);
            return next;
          },
          async restart() {
            if (!options.restart) throw new Error('this case requires the restart option');
            await options.restart();
          },
          outage: outage.outage,
        });
      } finally {
        // The backend up again first, so what the case left running stops as usual.
        await outage.end();
        for (const consumer of consumers) await consumer.stop();
        for (const peer of peers) await peer.close();
        await environment.close();
        for (const next of reopened) await next.close();
      }
    });
  }
}
