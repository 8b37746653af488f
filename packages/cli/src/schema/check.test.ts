import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isValidationError } from '@factline/core';
import { z } from 'zod';
import { checkSchemas } from './check.ts';
import { formatSchemaReport } from './format.ts';
import { writeSchemaSnapshot } from './snapshot.ts';

const root = mkdtempSync(join(tmpdir(), 'factline-schema-check-'));
after(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const freshDir = () => join(root, String(count++));

const v1 = z.object({ orderId: z.string(), total: z.number() });
const v2 = z.object({ orderId: z.string(), total: z.number(), currency: z.string() });
const placed = (version: number, schema: z.ZodType = v1) =>
  ({ kind: 'event', type: 'OrderPlaced', version, schema }) as const;
const ship = { kind: 'message', type: 'ShipOrder', version: 1, schema: z.object({ orderId: z.string() }) } as const;
const rules = (findings: readonly { rule: string; type: string; version: number }[]) =>
  findings.map((f) => `${f.rule} ${f.type} v${f.version}`);

describe('checkSchemas: versions and types', () => {
  it('passes an unchanged registry with nothing to report', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1), ship]);
    assert.deepEqual(checkSchemas([placed(1), ship], dir), { ok: true, problems: [], notices: [] });
  });

  it('passes a new type, with a notice to snapshot it', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1)]);
    const report = checkSchemas([placed(1), ship], dir);
    assert.equal(report.ok, true);
    assert.deepEqual(rules(report.notices), ['new-type ShipOrder v1']);
    assert.match(report.notices[0]?.message ?? '', /write messages\/ShipOrder\.v1\.json/);
  });

  it('passes a changed schema at a bumped version, with a notice to snapshot the new version', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1)]);
    const report = checkSchemas([placed(2, v2)], dir);
    assert.equal(report.ok, true);
    assert.deepEqual(rules(report.notices), ['needs-snapshot OrderPlaced v2']);
  });

  it('compares every version a registry lists with its own file', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1), placed(2, v2)]);
    const narrowed = z.object({ orderId: z.string(), total: z.number().int() });
    const report = checkSchemas([placed(1, narrowed), placed(2, v2)], dir);
    assert.deepEqual(rules(report.problems), ['type-narrowed OrderPlaced v1']);
  });

  it('fails a version lower than the snapshot has', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1)]);
    writeSchemaSnapshot(dir, [placed(2, v2)]);
    const report = checkSchemas([placed(1)], dir);
    assert.equal(report.ok, false);
    assert.deepEqual(rules(report.problems), ['version-decreased OrderPlaced v1']);
    assert.deepEqual([report.problems[0]?.before, report.problems[0]?.after], [2, 1]);
  });

  it('fails a type that has a snapshot but is gone from the registry', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1), placed(2, v2), ship]);
    const report = checkSchemas([ship], dir);
    assert.deepEqual(rules(report.problems), ['type-removed OrderPlaced v2']);
  });

  it('passes a compatible change at the same version, with a notice that the snapshot is outdated', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1)]);
    const report = checkSchemas([placed(1, v1.extend({ note: z.string().optional() }))], dir);
    assert.equal(report.ok, true);
    assert.deepEqual(rules(report.notices), ['snapshot-outdated OrderPlaced v1']);
  });

  it('refuses a folder that is not a snapshot (a wrong --dir must not pass)', () => {
    assert.throws(
      () => checkSchemas([placed(1)], join(root, 'missing')),
      (error: unknown) => isValidationError(error) && /is not a schema snapshot folder/.test(error.message),
    );
    // A folder that exists but holds no snapshot: the source folder, the snapshot's own events/, an empty one.
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1)]);
    const emptyFolder = freshDir();
    mkdirSync(emptyFolder);
    for (const wrong of [emptyFolder, join(dir, 'events')]) {
      assert.throws(
        () => checkSchemas([placed(1, z.object({ orderId: z.number() }))], wrong),
        (error: unknown) => isValidationError(error) && /holds no schema snapshot/.test(error.message),
        wrong,
      );
    }
    // Writing the first snapshot into an empty folder still works.
    const empty = freshDir();
    mkdirSync(empty);
    assert.deepEqual(writeSchemaSnapshot(empty, [placed(1)]).written, ['events/OrderPlaced.v1.json']);
  });
});

describe('formatSchemaReport', () => {
  it('lists breaking changes by type with before and after, then notices, then the verdict', () => {
    const dir = freshDir();
    writeSchemaSnapshot(dir, [placed(1)]);
    const report = checkSchemas([placed(1, z.object({ orderId: z.string().max(36) })), ship], dir);
    assert.equal(
      formatSchemaReport(report),
      [
        'Breaking changes (2):',
        '  event OrderPlaced v1',
        '    bounds-tightened at $.orderId: maxLength lowered to 36 characters (was unbounded)',
        '      before: null',
        '      after:  36',
        "    field-removed at $.total: field 'total' was removed or renamed",
        '      before: {"type":"number"}',
        '      after:  null',
        'Notices (1):',
        '  message ShipOrder v1',
        '    new-type at $: a new type with no snapshot yet: write messages/ShipOrder.v1.json',
        'Schema check failed: bump the version of each type above and add an upcaster, or revert the change.',
      ].join('\n'),
    );
    assert.equal(
      formatSchemaReport({ ok: true, problems: [], notices: [] }),
      'Schemas are compatible with the snapshot.',
    );
  });
});
