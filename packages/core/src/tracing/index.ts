// The users' part of tracing; what adapters build tracers from is on `@factline/core/adapter`.
export { renderTraceTree } from './render-trace.ts';
export { type TraceJsonOptions, traceTreeToJson } from './trace-json.ts';
export type { OperationTracer, TraceNode, TraceNodeKind, TraceOptions, TraceStatus, TraceTree } from './trace-tree.ts';
