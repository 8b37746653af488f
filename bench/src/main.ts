import { runWorkload, type Workload, writeResults } from './harness.ts';
import { pipelineWorkloads, removePipelineFiles } from './workloads/pipeline.ts';
import { postgresWorkloads } from './workloads/postgres.ts';
import { dropPostgresScanSchemas, postgresScanWorkloads } from './workloads/postgres-scan.ts';
import { projectionWorkloads, removeProjectionFiles } from './workloads/projections.ts';
import { sqliteWorkloads } from './workloads/sqlite.ts';
import { removeScanFiles, sqliteScanWorkloads } from './workloads/sqlite-scan.ts';

const workloads: Workload[] = [
  ...sqliteWorkloads,
  ...sqliteScanWorkloads,
  ...postgresWorkloads,
  ...postgresScanWorkloads,
  ...projectionWorkloads,
  ...pipelineWorkloads,
];
const filter = process.argv[2] ?? '';
const selected = workloads.filter((w) => w.name.includes(filter));
if (selected.length === 0) {
  console.error(`no workload matches '${filter}'; workloads: ${workloads.map((w) => w.name).join(', ')}`);
  process.exit(1);
}
try {
  for (const workload of selected) await runWorkload(workload);
} finally {
  removeScanFiles();
  removeProjectionFiles();
  removePipelineFiles();
  await dropPostgresScanSchemas();
}
writeResults(new URL('../results/latest.json', import.meta.url), filter);
