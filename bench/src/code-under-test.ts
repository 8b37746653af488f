/**
 * Which Factline code the bench measures: the packages' TypeScript sources through tsx (the default),
 * or, with `FACTLINE_BENCH_BUILT=1`, the built packages (`packages/<name>/dist`, what users install;
 * bench/run.mjs runs `npm run build` first). tsx compiles with esbuild's `keepNames`, which wraps every
 * function a module creates in a call that sets its `name`: closures made per message cost more from
 * source than from the build. The bench's own files and the raw subjects run through tsx either way.
 * Which one this process runs is read off where `@factline/core` resolves (Node's `factline-source`
 * condition picks the sources).
 */
export const BUILT = !import.meta.resolve('@factline/core').endsWith('.ts');

/** Node's flags for a child process of the bench: the same code under test as this process. */
export const NODE_FLAGS: readonly string[] = BUILT
  ? ['--import', 'tsx']
  : ['--conditions=factline-source', '--import', 'tsx'];

const root = new URL('../../', import.meta.url);

/**
 * The path of a package module by its path inside `src` without extension (`'tracing/otel'`): the
 * source file, or its compiled counterpart under `dist` when the bench measures the build.
 */
export const packageModule = (pkg: 'core' | 'cli', path: string): string =>
  new URL(BUILT ? `packages/${pkg}/dist/${path}.js` : `packages/${pkg}/src/${path}.ts`, root).pathname;
