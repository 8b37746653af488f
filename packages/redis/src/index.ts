export { assertRedisUrl, type RedisCommandSender, redactUrl, scanKeys } from './connection.ts';
export { partitionOf, type RedisKeys, redisKeys } from './keys.ts';
export { getRedisDeadLetterStore } from './messaging/redis-dead-letters.ts';
export {
  getRedisInbox,
  type RedisInbox,
  type RedisInboxErrorStage,
  type RedisInboxOptions,
} from './messaging/redis-inbox.ts';
export { getRedisTransport, type RedisTransport } from './messaging/redis-transport.ts';
export { applicationName, type RedisErrorStage, type RedisTransportOptions } from './options.ts';
export { unusableRedisServer } from './server-checks.ts';
export { type RedisTlsFailure, type RedisTlsOptions, redisTlsFailure } from './tls.ts';
