// Every benchmark workload, in run order; also where an isolated trial's child process finds its subject.
import type { Workload } from './harness.ts';
import { cliWorkloads } from './workloads/cli-tail.ts';
import { natsWorkloads } from './workloads/nats.ts';
import { pipelineWorkloads } from './workloads/pipeline.ts';
import { pipelineMemoryWorkloads } from './workloads/pipeline-memory.ts';
import { postgresWorkloads } from './workloads/postgres.ts';
import { postgresScanWorkloads } from './workloads/postgres-scan.ts';
import { projectionWorkloads } from './workloads/projections.ts';
import { rabbitmqWorkloads } from './workloads/rabbitmq.ts';
import { redisWorkloads } from './workloads/redis.ts';
import { schemaReadWorkloads } from './workloads/schema-read.ts';
import { schemaSnapshotWorkloads } from './workloads/schema-snapshots.ts';
import { sqliteWorkloads } from './workloads/sqlite.ts';
import { sqliteScanWorkloads } from './workloads/sqlite-scan.ts';
import { tracingWorkloads } from './workloads/tracing.ts';
import { tracingGuardWorkloads } from './workloads/tracing-guards.ts';
import { tracingOverheadWorkloads } from './workloads/tracing-overhead.ts';
import { uiWorkloads } from './workloads/ui-streams.ts';
import { workflowWorkloads } from './workloads/workflow.ts';
import { workflowPostgresWorkloads } from './workloads/workflow-postgres.ts';
import { workflowSnapshotWorkloads } from './workloads/workflow-snapshots.ts';

export const workloads: Workload[] = [
  ...sqliteWorkloads,
  ...sqliteScanWorkloads,
  ...postgresWorkloads,
  ...postgresScanWorkloads,
  ...projectionWorkloads,
  ...pipelineWorkloads,
  ...pipelineMemoryWorkloads,
  ...rabbitmqWorkloads,
  ...natsWorkloads,
  ...redisWorkloads,
  ...tracingOverheadWorkloads,
  ...tracingGuardWorkloads,
  ...tracingWorkloads,
  ...schemaReadWorkloads,
  ...schemaSnapshotWorkloads,
  ...cliWorkloads,
  ...uiWorkloads,
  ...workflowWorkloads,
  ...workflowPostgresWorkloads,
  ...workflowSnapshotWorkloads,
];
