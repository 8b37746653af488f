import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CliError } from './cli-error.ts';
import type { SchemaDefinitionsSource } from './schema/definitions.ts';

const typescript = new Set(['.ts', '.mts', '.cts', '.tsx']);

type TsImport = (specifier: string, parentURL: string) => Promise<Record<string, unknown>>;

/** Where tsx's ESM API file is, found from `from` (tsx resolved as that file's project would resolve it). */
function findTsxApi(from: string): string | undefined {
  try {
    const manifestPath = createRequire(from).resolve('tsx/package.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
      exports?: Record<string, { import?: { default?: string } | string }>;
    };
    const entry = manifest.exports?.['./esm/api']?.import;
    const file = typeof entry === 'string' ? entry : entry?.default;
    return file ? join(dirname(manifestPath), file) : undefined;
  } catch {
    return undefined;
  }
}

/** tsx's `tsImport`, from the registry's project first, else from beside the CLI; `undefined` when neither has tsx. */
async function findTsImport(file: string): Promise<TsImport | undefined> {
  for (const from of [file, fileURLToPath(import.meta.url)]) {
    const api = findTsxApi(from);
    if (!api) continue;
    const { tsImport } = (await import(pathToFileURL(api).href)) as { tsImport?: TsImport };
    if (tsImport) return tsImport;
  }
  return undefined;
}

/**
 * Imports a module of the user's project (through tsx when it is TypeScript
 * and the project has tsx); a failure is one clear line naming `flag`.
 *
 * @example
 * const module = await importUserModule('src/workflows.ts', '--workflows', process.cwd());
 */
export async function importUserModule(
  modulePath: string,
  flag: string,
  cwd: string,
): Promise<Record<string, unknown>> {
  const file = resolve(cwd, modulePath);
  if (!existsSync(file)) throw new CliError(`${flag} ${modulePath}: no such file (${file})`);
  try {
    return await importModule(file);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot load ${modulePath}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

async function importModule(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  if (typescript.has(extname(file))) {
    // On Node 20 a TypeScript module needs a loader: tsx, when the project has it.
    const tsImport = await findTsImport(file);
    if (tsImport) return tsImport(url, import.meta.url);
    try {
      return (await import(url)) as Record<string, unknown>;
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw error;
      throw new CliError(
        `cannot load ${file}: a TypeScript module needs tsx (npm install -D tsx), or give compiled JavaScript`,
      );
    }
  }
  return (await import(url)) as Record<string, unknown>;
}

const isSource = (value: unknown): value is SchemaDefinitionsSource =>
  (typeof value === 'object' || typeof value === 'function') &&
  value !== null &&
  (typeof (value as { definitions?: unknown }).definitions === 'function' ||
    typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function');

/**
 * Imports the module that holds the registry and picks it out: its default
 * export, else the export named `registry`, else `schemas`; each may be a
 * registry (with `definitions()`) or an array of definitions. A TypeScript
 * module is imported through tsx when the project has it.
 *
 * @example
 * const registry = await loadRegistry('src/schemas.ts');
 */
export async function loadRegistry(modulePath: string, cwd: string = process.cwd()): Promise<SchemaDefinitionsSource> {
  const module = await importUserModule(modulePath, '--registry', cwd);
  // A module compiled or loaded as CommonJS shows its exports under `default` once more.
  const inner = (module.default ?? {}) as Record<string, unknown>;
  for (const exports of [module, inner]) {
    for (const name of ['default', 'registry', 'schemas']) {
      if (isSource(exports[name])) return exports[name];
    }
  }
  throw new CliError(
    `${modulePath} exports no registry: give it a default export, or one named registry or schemas, holding a schema registry or an array of definitions`,
  );
}
