import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The workspace root. */
export const workspaceRoot = new URL('../../', import.meta.url).pathname;

/** The packages that are published, by folder under `packages/`. */
export const publishedPackages = ['core', 'sqlite', 'postgres', 'rabbitmq', 'nats', 'redis', 'cli'] as const;

/** The published name of each package folder: `@factline/<folder>`, but the command line is `factline`. */
export const packageName = (folder: (typeof publishedPackages)[number]) =>
  folder === 'cli' ? 'factline' : `@factline/${folder}`;

/** What `npm pack --json` reports for one tarball. */
export interface PackedPackage {
  name: string;
  version: string;
  filename: string;
  files: { path: string }[];
}

/** A package's manifest, as far as these tests read it. */
export interface Manifest {
  name: string;
  version: string;
  exports: Record<string, Record<string, string>>;
  files?: string[];
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

/** Runs a command with a deadline (nothing here may hang); rejects with its output on failure. */
export async function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 60_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const { stdout, stderr, message } = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${message}\n${stdout ?? ''}\n${stderr ?? ''}`);
  }
}

export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
}

/** `npm pack` of every published package into `destination`; its `prepack` builds `dist/` first. */
export async function packAll(destination: string): Promise<PackedPackage[]> {
  const workspaces = publishedPackages.flatMap((name) => ['--workspace', `packages/${name}`]);
  const stdout = await run('npm', ['pack', '--json', '--pack-destination', destination, ...workspaces], {
    cwd: workspaceRoot,
    timeoutMs: 120_000,
  });
  return JSON.parse(stdout) as PackedPackage[];
}

/**
 * Lays out an app's node_modules as `npm install <tarballs>` does (flat, one
 * copy of @factline/core for every adapter): each tarball is unpacked, and each
 * third-party dependency a package declares is linked from the workspace's
 * node_modules, whose native build of better-sqlite3 is already made. Only
 * declared dependencies are linked, so a type package missing from
 * `dependencies` fails the app's `tsc`.
 */
export async function installApp(app: string, tarballs: readonly string[], appDependencies: readonly string[]) {
  cpSync(new URL('./app/', import.meta.url), app, { recursive: true });
  const modules = join(app, 'node_modules');
  const linked = new Set<string>();
  const link = (name: string) => {
    if (linked.has(name)) return;
    linked.add(name);
    const target = join(modules, name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(workspaceRoot, 'node_modules', name), target, 'dir');
  };
  const manifests: Manifest[] = [];
  for (const tarball of tarballs) {
    const unpacked = join(app, '.unpack', tarball.replace(/\W/g, '_'));
    mkdirSync(unpacked, { recursive: true });
    await run('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1'], { cwd: app });
    const manifest = readManifest(unpacked);
    const target = join(modules, manifest.name);
    mkdirSync(dirname(target), { recursive: true });
    cpSync(unpacked, target, { recursive: true });
    manifests.push(manifest);
  }
  const installed = new Set(manifests.map((m) => m.name));
  for (const manifest of manifests) {
    for (const name of Object.keys(manifest.dependencies ?? {})) if (!installed.has(name)) link(name);
  }
  for (const name of appDependencies) link(name);
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'factline-pack-app', private: true, type: 'module' }, null, 2)}\n`,
  );
  return manifests;
}
