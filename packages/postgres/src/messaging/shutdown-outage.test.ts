import { after } from 'node:test';
import { testShutdownOrders } from '@factline/core/testing';
import { type Cluster, privateCluster, stopCluster } from '../fixtures/private-cluster.ts';
import { openShutdownService } from './fixtures/shutdown-service.ts';

// The shutdown orders with the server gone: store, transport, consumer, outbox relay and event relay busy on
// a private cluster, the cluster stopped (fast shutdown), then every part stopped in an order and the pool
// they share ended, each within the bound; the cluster started again for the next order. One order with the
// server up first, as the shared-server suite runs them.
const { cluster, skip, remove } = await privateCluster();
after(remove);

testShutdownOrders({
  name: 'postgres (one pool, a private server stopped under the parts)',
  skip,
  orders: 1,
  outageOrders: 4,
  stopWithinMs: 10_000,
  pollMs: 50,
  outage: () => stopCluster(cluster as Cluster),
  openService: (n) => openShutdownService((cluster as Cluster).url, `outage_${n}`),
});
