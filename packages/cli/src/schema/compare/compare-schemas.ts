import type { SchemaChange } from '../report.ts';
import { type Branch, branches, canonical } from './branches.ts';
import { branchChanges, distinct } from './keywords.ts';

// number and integer are compared keyword by keyword: integer for number is itself a narrowing found there.
const comparable = (now: Branch['type'], was: Branch['type']) =>
  now === was || (now === 'number' && was === 'integer') || (now === 'integer' && was === 'number');

const opaqueKinds = 'not, if/then, an outside $ref, an allOf it cannot merge';

const describeTypes = (list: readonly Branch[]) => [...new Set(list.map((b) => b.type))].join(' | ') || 'nothing';

/**
 * The breaking changes from the `before` schema (a snapshot) to `after` (the
 * registry's): every value `before` accepted must still be accepted, and no
 * field may go. Each side's `$ref`s are followed inside its own document; a
 * recursive schema is compared once per pair of its parts.
 *
 * @example
 * compareSchemas(
 *   { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
 *   { type: 'object', properties: {}, required: [] },
 * ); // [{ rule: 'field-removed', path: '$.id', ... }]
 */
export function compareSchemas(before: unknown, after: unknown): SchemaChange[] {
  // Pairs already under comparison: meeting one again is a cycle, taken as compatible.
  const inProgress = new Map<unknown, Set<unknown>>();

  const compare = (wasNode: unknown, nowNode: unknown, path: string): SchemaChange[] =>
    compareBranches(branches(wasNode, before), branches(nowNode, after), path);

  /** `branchChanges`, unless this pair is already being compared further up: a cycle, taken as compatible. */
  const guarded = (was: Branch, now: Branch, path: string): SchemaChange[] => {
    const seen = inProgress.get(was.schema) ?? new Set<unknown>();
    if (seen.has(now.schema)) return [];
    seen.add(now.schema);
    inProgress.set(was.schema, seen);
    try {
      return branchChanges(was, now, path, compare, after);
    } finally {
      seen.delete(now.schema);
    }
  };

  const compareBranches = (wasList: Branch[], nowList: Branch[], path: string): SchemaChange[] => {
    if (nowList.some((b) => b.type === 'any')) return [];
    const changes: SchemaChange[] = [];
    for (const was of wasList) changes.push(...coverBranch(was, wasList, nowList, path));
    // The branches of a type list share their keywords: a change to one (`not` beside it) is told once.
    return distinct(changes);
  };

  /** The changes that keep `was` from being accepted by any of `nowList`: none when one accepts it all. */
  const coverBranch = (was: Branch, wasList: Branch[], nowList: Branch[], path: string): SchemaChange[] => {
    if (was.type === 'any') {
      const message = `accepted any value, now only ${describeTypes(nowList)}`;
      return [{ rule: 'type-narrowed', path, message, before: true, after: nowList.map((b) => b.schema) }];
    }
    const cannotCompare = (): SchemaChange[] => {
      const message = `changed in a way the check cannot compare (${opaqueKinds})`;
      return [{ rule: 'type-narrowed', path, message, before: was.schema, after: nowList.map((b) => b.schema) }];
    };
    if (was.type === 'opaque') {
      const text = canonical(was.schema);
      return nowList.some((b) => canonical(b.schema) === text) ? [] : cannotCompare();
    }
    const candidates = nowList.filter((now) => comparable(now.type, was.type));
    if (candidates.length === 0 && nowList.some((b) => b.type === 'opaque')) return cannotCompare();
    if (candidates.length === 0) return [missingBranch(was, wasList, nowList, path)];
    let best: SchemaChange[] | undefined;
    for (const now of candidates) {
      const found = guarded(was, now, path);
      if (found.length === 0) return [];
      if (best === undefined || found.length < best.length) best = found;
    }
    // More members of this type before than now: one of them went, whatever else changed.
    const sameType = (list: Branch[]) => list.filter((b) => comparable(b.type, was.type)).length;
    if (sameType(wasList) > sameType(nowList)) {
      const message = `union member (${was.type}) was removed`;
      return [{ rule: 'union-member-removed', path, message, before: was.schema, after: null }];
    }
    return best ?? [];
  };

  const missingBranch = (was: Branch, wasList: Branch[], nowList: Branch[], path: string): SchemaChange => {
    if (was.values) {
      const constant = nowList.find((b) => b.fromConst);
      if (was.fromConst && constant?.values) {
        const message = `constant changed from ${JSON.stringify(was.values[0])} to ${JSON.stringify(constant.values[0])}`;
        return { rule: 'const-changed', path, message, before: was.values[0], after: constant.values[0] };
      }
      const message = `no longer accepts ${was.values.map((v) => JSON.stringify(v)).join(', ')}`;
      return { rule: 'enum-value-removed', path, message, before: was.values, after: null };
    }
    if (wasList.length > 1) {
      const message = was.type === 'null' ? 'is no longer nullable' : `no longer accepts ${was.type}`;
      return { rule: 'union-member-removed', path, message, before: was.schema, after: null };
    }
    const message = `type changed from ${was.type} to ${describeTypes(nowList)}`;
    return { rule: 'type-narrowed', path, message, before: was.type, after: nowList.map((b) => b.type) };
  };

  return compare(before, after, '$');
}
