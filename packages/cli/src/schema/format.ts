import type { SchemaCheckReport, SchemaFinding } from './report.ts';

function short(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function section(findings: readonly SchemaFinding<string>[], withValues: boolean): string[] {
  const lines: string[] = [];
  let heading = '';
  for (const f of findings) {
    const title = `${f.kind} ${f.type} v${f.version}`;
    if (title !== heading) {
      lines.push(`  ${title}`);
      heading = title;
    }
    lines.push(`    ${f.rule} at ${f.path}: ${f.message}`);
    if (withValues && (f.before !== null || f.after !== null)) {
      lines.push(`      before: ${short(f.before)}`, `      after:  ${short(f.after)}`);
    }
  }
  return lines;
}

/**
 * The report as text for a terminal or a CI log: breaking changes grouped by
 * type with what they were and are, then the notices, then one verdict line.
 * (The JSON form is the report itself.)
 *
 * @example
 * console.log(formatSchemaReport(checkSchemas(registry, 'schemas')));
 * // Breaking changes (1):
 * //   event OrderPlaced v2
 * //     field-removed at $.total: field 'total' was removed or renamed; ...
 */
export function formatSchemaReport(report: SchemaCheckReport): string {
  const lines: string[] = [];
  const byType = (a: SchemaFinding<string>, b: SchemaFinding<string>) =>
    a.kind.localeCompare(b.kind) || a.type.localeCompare(b.type) || a.version - b.version;
  if (report.problems.length > 0) {
    lines.push(`Breaking changes (${report.problems.length}):`, ...section([...report.problems].sort(byType), true));
  }
  if (report.notices.length > 0) {
    lines.push(`Notices (${report.notices.length}):`, ...section([...report.notices].sort(byType), false));
  }
  lines.push(
    report.ok
      ? 'Schemas are compatible with the snapshot.'
      : 'Schema check failed: bump the version of each type above and add an upcaster, or revert the change.',
  );
  return lines.join('\n');
}
