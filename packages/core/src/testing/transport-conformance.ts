import { after, describe, it } from 'node:test';
import { answerWithin } from '../adapter/deadline.ts';
import { createMessage } from '../messaging/message.ts';
import type { Transport } from '../messaging/transport.ts';
import { uniqueCategory } from './conformance/context.ts';
import { caseOutage, type OutageHook } from './outage.ts';
import { unmet } from './requirements.ts';
import {
  receiveAtLeast,
  type TransportRequirement,
  transportConformanceCases,
  transportSkipReasons,
} from './transport/index.ts';

export {
  type ReceiveOptions,
  type TransportCaseContext,
  type TransportConformanceCase,
  type TransportRequirement,
  transportConformanceCases,
  transportSkipReasons,
} from './transport/index.ts';

export interface TransportConformanceOptions {
  /** Shown in the test names, e.g. `'sqlite (file)'`. */
  name: string;
  /**
   * Called once per case; the transport is closed when the case ends. It may
   * share its storage with earlier transports: every case uses topics and
   * groups of its own. Give `hooks.onError` to the transport's own error
   * hook: when the case fails, what it was told (the count, the first 10 and
   * the last 10, with their times since the case began) is added to the
   * failure's message.
   */
  createTransport: (hooks: TransportCaseHooks) => Promise<Transport> | Transport;
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
   * Called when a case fails, before its transport is closed: what the
   * backend holds for it (a consumer's pending counts, which partitions the
   * process holds), added to the failure's message. Given 5 s; a failure of
   * its own is shown instead.
   */
  diagnose?: (transport: Transport) => Promise<string> | string;
  /** Called once after the whole suite, e.g. to delete a file. */
  teardown?: () => Promise<void> | void;
  /** Skip the suite with this reason. */
  skip?: string | false;
}

/** What the suite gives `createTransport` for one case. */
export interface TransportCaseHooks {
  /** Pass to the transport's `onError`: a failing case's message then says what the transport reported. */
  onError(error: unknown, context?: { stage?: string }): void;
}

/** How many of a case's first and of its last reported errors its failure shows. */
const REPORTED_SHOWN = 10;

/**
 * What a transport tells `onError` during one case: the first
 * `REPORTED_SHOWN` (where a fault began) and the last (what it still said
 * at the end), each with its time since the case began.
 */
function reportedErrors() {
  const began = Date.now();
  const first: string[] = [];
  const last: string[] = [];
  let count = 0;
  return {
    onError(error: unknown, context?: { stage?: string }) {
      const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const line = `+${Date.now() - began} ms${context?.stage ? ` ${context.stage}` : ''} ${text}`;
      count += 1;
      if (first.length < REPORTED_SHOWN) first.push(line);
      else {
        last.push(line);
        if (last.length > REPORTED_SHOWN) last.shift();
      }
    },
    /** `failure` with what was reported (when something was) and the backend's state (when given) added to its message (and stack). */
    addTo(failure: unknown, state?: string): unknown {
      if ((count === 0 && state === undefined) || !(failure instanceof Error)) return failure;
      const skipped = count - first.length - last.length;
      const lines = [...first, ...(skipped > 0 ? [`(${skipped} more)`] : []), ...last];
      const { message } = failure;
      if (count > 0)
        failure.message += `\n  the transport reported to onError meanwhile (${count}):\n  - ${lines.join('\n  - ')}`;
      if (state !== undefined)
        failure.message += `\n  the backend's state (diagnose):\n    ${state.split('\n').join('\n    ')}`;
      // Reporters that print the stack show the message it was made with: it gets the addition too.
      if (typeof failure.stack === 'string') failure.stack = failure.stack.replace(message, failure.message);
      return failure;
    },
  };
}

/** What `diagnose` says of a failed case's transport within 5 s, or why it could not; undefined without it. */
async function diagnosis(
  diagnose: TransportConformanceOptions['diagnose'],
  transport: Transport,
): Promise<string | undefined> {
  if (!diagnose) return undefined;
  try {
    return await answerWithin(
      Promise.resolve().then(() => diagnose(transport)),
      5000,
      () => new Error('no answer in 5 s'),
    );
  } catch (error) {
    return `diagnose failed: ${String(error)}`;
  }
}

/**
 * Registers the transport contract with `node:test`: one test per case,
 * grouped by topic. A case needing a capability the transport does not
 * declare (or a restart or outage hook not given) is skipped with the reason. Every
 * transport adapter runs it against itself; the cases are also exported as
 * data (`transportConformanceCases`) for other test runners.
 *
 * @example
 * testTransportConformance({ name: 'in-memory', createTransport: () => getInMemoryTransport() });
 */
export function testTransportConformance(options: TransportConformanceOptions): void {
  const restart = options.restart;
  const hooks: Partial<Record<TransportRequirement, boolean>> = {
    restart: restart !== undefined,
    outage: options.outage !== undefined,
  };
  const hasOption = (requirement: TransportRequirement) => hooks[requirement] ?? true;
  describe(`Transport conformance: ${options.name}`, { skip: options.skip || false }, () => {
    after(async () => {
      await options.teardown?.();
    });
    for (const [topic, cases] of Object.entries(transportConformanceCases)) {
      describe(topic, () => {
        for (const conformanceCase of cases) {
          // What the options lack is known now; what the transport lacks once one is created.
          const skip = unmet(conformanceCase.requires, hasOption, transportSkipReasons) ?? false;
          it(conformanceCase.name, { skip }, async (t) => {
            const reported = reportedErrors();
            const transport = await options.createTransport({ onError: reported.onError });
            const outage = caseOutage(options.outage);
            try {
              const lacking = unmet(
                conformanceCase.requires,
                (r) => r === 'restart' || r === 'outage' || transport.capabilities[r] === true,
                transportSkipReasons,
              );
              if (lacking !== undefined) {
                t.skip(lacking);
                return;
              }
              await conformanceCase.run({
                transport,
                topic: (label = 't') => uniqueCategory(label),
                group: (label = 'g') => uniqueCategory(label),
                message: (input = {}) => createMessage({ type: 'ConformanceTested', data: {}, ...input }),
                receiveAtLeast,
                restart: async () => {
                  if (!restart) throw new Error('this case requires the restart option');
                  await restart();
                },
                outage: outage.outage,
              });
            } catch (failure) {
              throw reported.addTo(failure, await diagnosis(options.diagnose, transport));
            } finally {
              await outage.end();
              await transport.close();
            }
          });
        }
      });
    }
  });
}
