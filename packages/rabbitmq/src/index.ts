export { assertAmqpUrl, redactUrl } from './connection.ts';
export { getRabbitTransport, type RabbitTransport } from './messaging/rabbitmq-transport.ts';
export { getRabbitRedriver, type RabbitRedriver, type RabbitRedriverOptions } from './messaging/redriver.ts';
export type { RabbitErrorStage, RabbitTlsOptions, RabbitTransportOptions } from './options.ts';
export { delayTiers, partitionOf, topologyNames } from './topology.ts';
