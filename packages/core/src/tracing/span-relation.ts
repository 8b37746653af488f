/**
 * How a consumer's process span relates to the producer's span. Kept apart
 * from the OpenTelemetry code so that users' type checks never need
 * `@opentelemetry/api` (an optional peer).
 */
export type ProducerSpanRelation = 'link' | 'parent';
