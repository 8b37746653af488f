import { workloads } from './all-workloads.ts';
import { BUILT } from './code-under-test.ts';
import { runWorkload, writeResults } from './harness.ts';
import { removeNatsFiles } from './workloads/nats.ts';
import { removePipelineFiles } from './workloads/pipeline.ts';
import { dropPostgresScanSchemas } from './workloads/postgres-scan.ts';
import { removeProjectionFiles } from './workloads/projections.ts';
import { removeRabbitFiles } from './workloads/rabbitmq.ts';
import { removeSchemaFiles } from './workloads/schema-read.ts';
import { removeScanFiles } from './workloads/sqlite-scan.ts';
import { removeTracingFiles } from './workloads/tracing.ts';
import { removeTracingOverheadFiles } from './workloads/tracing-overhead.ts';
import { removeWorkflowFiles } from './workloads/workflow.ts';

const filter = process.argv[2] ?? '';
console.log(
  BUILT
    ? '# measuring the built packages (packages/*/dist)'
    : '# measuring the TypeScript sources through tsx (FACTLINE_BENCH_BUILT=1 measures the build)',
);
const selected = workloads.filter((w) => w.name.includes(filter));
if (selected.length === 0) {
  console.error(`no workload matches '${filter}'; workloads: ${workloads.map((w) => w.name).join(', ')}`);
  process.exit(1);
}
// Isolated subjects (the peers) run each trial in a child process that finds its workload here.
const module = new URL('./all-workloads.ts', import.meta.url).href;
try {
  for (const workload of selected) await runWorkload(workload, { module });
} finally {
  removeScanFiles();
  removeProjectionFiles();
  removePipelineFiles();
  removeRabbitFiles();
  removeNatsFiles();
  removeTracingFiles();
  removeTracingOverheadFiles();
  removeSchemaFiles();
  removeWorkflowFiles();
  await dropPostgresScanSchemas();
}
writeResults(new URL('../results/latest.json', import.meta.url), filter);
