export { type NatsTlsOptions, parseNatsUrl, redactUrl } from './connection.ts';
export { getNatsTransport, type NatsTransport } from './messaging/nats-transport.ts';
export { getNatsRedriver, type NatsRedriver, type NatsRedriverOptions } from './messaging/redriver.ts';
export type { NatsErrorStage, NatsTransportOptions } from './options.ts';
export { partitionOf, subjectToken, topologyNames } from './topology.ts';
