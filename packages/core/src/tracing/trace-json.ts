import { checkOptions, describeValue } from '../options/check-options.ts';
import type { TraceTree } from './trace-tree.ts';

export interface TraceJsonOptions {
  /**
   * Spaces per level of nesting, 0 to 10 (as `JSON.stringify`'s `space`).
   * Default 0: one line. Past `MAX_INDENTED_LEVELS` levels the rest is
   * written on one line, so the output grows with the nodes, not with
   * their depth squared.
   */
  indent?: number;
}

/** Levels of nesting that `indent` lays out on lines of their own (about 49 levels of the tree). */
export const MAX_INDENTED_LEVELS = 100;

/**
 * A trace tree as JSON text, for a tree of any depth. `JSON.stringify`
 * recurses and throws a `RangeError` on a causal chain a few thousand hops
 * deep; this writes the same document with a work list. Without `indent`
 * the text is that of `JSON.stringify(tree)`; with it, that of
 * `JSON.stringify(tree, null, indent)` down to `MAX_INDENTED_LEVELS` levels
 * of nesting, deeper values written without line breaks.
 *
 * @example
 * const tree = await tracer.traceOperation('checkout-1001', { limit: 100_000 });
 * process.stdout.write(traceTreeToJson(tree, { indent: 2 }));
 */
export function traceTreeToJson(tree: TraceTree, options?: TraceJsonOptions): string {
  checkOptions(
    options,
    {
      indent: (value) =>
        Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 10
          ? undefined
          : `must be an integer from 0 to 10, got ${describeValue(value)}`,
    },
    'traceTreeToJson',
  );
  return writeJson(tree, options?.indent ?? 0);
}

/** An object or array being written: its members left, and how it is laid out. */
interface Open {
  value: object;
  /** The object's keys; `undefined` for an array. */
  keys: string[] | undefined;
  size: number;
  next: number;
  written: number;
  level: number;
  /** Each member on a line of its own. */
  lines: boolean;
}

/** What `JSON.stringify` calls on a value before writing it. */
function prepared(value: unknown, key: string): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function')
    return (value as { toJSON: (key: string) => unknown }).toJSON(key);
  return value;
}

const boxed = (value: object) => value instanceof Number || value instanceof String || value instanceof Boolean;

/**
 * Plain JSON data as `JSON.stringify(value, null, indent)` writes it, without
 * recursion: leaves (strings, numbers…) go through `JSON.stringify` itself,
 * so their escaping is its own.
 */
function writeJson(root: unknown, indent: number): string {
  const out: string[] = [];
  const stack: Open[] = [];
  const onStack = new Set<object>();
  const pads: string[] = [];
  const pad = (level: number) => {
    pads[level] ??= `\n${' '.repeat(indent * level)}`;
    return pads[level];
  };
  /** A leaf's text, `undefined` for what JSON leaves out, or a container opened (its bracket written). */
  const begin = (given: unknown, key: string, level: number): string | undefined | Open => {
    const value = prepared(given, key);
    if (value === null || typeof value !== 'object' || boxed(value)) return JSON.stringify(value);
    if (onStack.has(value)) throw new TypeError('Converting circular structure to JSON');
    const keys = Array.isArray(value) ? undefined : Object.keys(value);
    const size = keys === undefined ? (value as unknown[]).length : keys.length;
    const lines = indent > 0 && level < MAX_INDENTED_LEVELS;
    onStack.add(value);
    out.push(keys === undefined ? '[' : '{');
    return { value, keys, size, next: 0, written: 0, level, lines };
  };
  const first = begin(root, '', 0);
  if (typeof first !== 'object') return first ?? 'null';
  stack.push(first);
  while (stack.length > 0) {
    const open = stack[stack.length - 1] as Open;
    let child: Open | undefined;
    while (child === undefined && open.next < open.size) {
      const index = open.next++;
      const key = open.keys === undefined ? String(index) : (open.keys[index] as string);
      const mark = out.length;
      out.push(open.written > 0 ? ',' : '', open.lines ? pad(open.level + 1) : '');
      if (open.keys !== undefined) out.push(JSON.stringify(key), open.lines ? ': ' : ':');
      const member = begin((open.value as Record<string, unknown>)[key], key, open.level + 1);
      if (member === undefined && open.keys !== undefined) {
        out.length = mark; // an object leaves out a member it cannot write
        continue;
      }
      open.written++;
      if (typeof member === 'object') child = member;
      else out.push(member ?? 'null');
    }
    if (child !== undefined) {
      stack.push(child);
      continue;
    }
    stack.pop();
    onStack.delete(open.value);
    if (open.written > 0 && open.lines) out.push(pad(open.level));
    out.push(open.keys === undefined ? ']' : '}');
  }
  return out.join('');
}
