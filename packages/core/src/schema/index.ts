export {
  type DataOfDefinition,
  defineEvent,
  defineMessage,
  type EventDefinition,
  type EventOfDefinition,
  type MessageDefinition,
  type MessageOfDefinition,
  type SchemaDefinition,
  type SchemaDefinitionInput,
  type StandardSchemaV1,
  type Upcaster,
  type Upcasters,
} from './define.ts';
export { encodeMessages } from './encode-messages.ts';
export {
  createSchemaRegistry,
  type DecodedData,
  type EncodedData,
  type SchemaRegistry,
  type SchemaRegistryOptions,
} from './registry.ts';
