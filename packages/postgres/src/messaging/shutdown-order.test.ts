import { after } from 'node:test';
import { testShutdownOrders } from '@factline/core/testing';
import { dropSchema, postgresUnavailable, postgresUrl, testSchema } from '../fixtures/server.ts';
import { openShutdownService } from './fixtures/shutdown-service.ts';

// 24 orders (every rotation both ways, then seeded shuffles), the parts on one pool of the application's.
const unavailable = await postgresUnavailable();
const schemas: string[] = [];
after(async () => {
  if (unavailable) return;
  for (const schema of schemas) await dropSchema(schema);
});

testShutdownOrders({
  name: 'postgres (one pool)',
  skip: unavailable,
  orders: 24,
  stopWithinMs: 10_000,
  pollMs: 50,
  openService() {
    const schema = testSchema('shutdown');
    schemas.push(schema);
    return openShutdownService(postgresUrl, schema);
  },
});
