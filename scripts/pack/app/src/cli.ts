import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSchemas, writeSchemaSnapshot } from 'factline';
import { z } from 'zod';

const placed = (schema: z.ZodType) => [{ kind: 'event', type: 'OrderPlaced', version: 1, schema }] as const;

// The snapshot lives in the repository (here a temporary folder): events/OrderPlaced.v1.json.
const dir = mkdtempSync(join(tmpdir(), 'schemas-'));
writeSchemaSnapshot(dir, placed(z.object({ orderId: z.string(), total: z.number() })));

// `total` removed at the same version: stored v1 events and old readers would break.
const report = checkSchemas(placed(z.object({ orderId: z.string() })), dir);
console.log(JSON.stringify(report.problems.map((p) => [p.rule, p.path]))); // [["field-removed","$.total"]]
