import { after } from 'node:test';
import { testTransportConformance } from '@factline/core/testing';
import { redisUnavailable, redisUrl, removeKeys, testApplication } from '../fixtures/server.ts';
import { getRedisTransport } from './redis-transport.ts';

const skip = await redisUnavailable();
const application = testApplication('conf');

after(async () => {
  await removeKeys(application);
});

testTransportConformance({
  name: 'redis',
  skip,
  async createTransport() {
    // One partition: the suite's per-key cases also ask a lone subscription for publish order across keys.
    return getRedisTransport({ url: redisUrl, application, partitions: 1, reconnectMaxMs: 500 });
  },
});
