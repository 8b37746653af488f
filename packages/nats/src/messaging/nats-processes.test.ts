import { after, describe, it } from 'node:test';
import { type TestChild, waitUntil } from '@factline/core/testing';
import { killedConsumerRun } from '../../../sqlite/src/messaging/fixtures/consumer-kill.ts';
import { natsUnavailable, natsUrl, removeStreams, testApplication } from '../fixtures/server.ts';
import { getNatsTransport, type NatsTransport } from './nats-transport.ts';

// The scenario: consumer-kill.ts (three consumer processes, one SIGKILLed mid-run), with the partitions
// each process says it holds checked before and after.
const skip = await natsUnavailable();
const processes = killedConsumerRun('nats');
const created: NatsTransport[] = [];
const applications: string[] = [];

after(async () => {
  await processes.cleanUp();
  await Promise.all(created.map((t) => t.close()));
  if (!skip) await removeStreams(applications);
});

/** The partitions a child said it holds last. */
const heldBy = (child: TestChild) => {
  const lines = [...child.stdout().matchAll(/^held (.*)$/gm)];
  const last = lines[lines.length - 1]?.[1] ?? '';
  return last === '' ? [] : last.split(',').map(Number);
};

describe('nats: consumer processes of one group', { skip }, () => {
  it('three processes share the partitions, one SIGKILLed while it holds unacknowledged messages: the others get them after the ack wait; every message applied once, per-key order held', async () => {
    const application = testApplication('kill');
    applications.push(application);
    const partitions = 6;
    const publisher = await getNatsTransport({ url: natsUrl, application, partitions });
    created.push(publisher);
    await publisher.declareSubscription('counts', 'counter');
    await processes.run({
      url: natsUrl,
      application,
      partitions,
      childScript: new URL('./fixtures/consumer-child.ts', import.meta.url).pathname,
      publisher,
      // Each holds a share: no partition twice, all of them held.
      whenReady: (consumers) =>
        waitUntil(
          () => {
            const all = consumers.flatMap(heldBy);
            return (
              consumers.every((c) => heldBy(c).length > 0) &&
              new Set(all).size === partitions &&
              all.length === partitions
            );
          },
          'the partitions shared among the three',
          30_000,
        ),
      whenApplied: (survivors) =>
        waitUntil(
          () => survivors.flatMap(heldBy).length === partitions,
          "the survivors took the victim's partitions",
          30_000,
        ),
    });
  });
});
