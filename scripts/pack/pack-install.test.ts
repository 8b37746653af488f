import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  testApplication as natsApplication,
  natsUnavailable,
  natsUrl,
  removeStreams,
} from '../../packages/nats/src/fixtures/server.ts';
import {
  dropSchema,
  postgresUnavailable,
  postgresUrl,
  testSchema,
} from '../../packages/postgres/src/fixtures/server.ts';
import {
  amqpUrl,
  namesOf,
  rabbitUnavailable,
  removeTopology,
  testApplication,
} from '../../packages/rabbitmq/src/fixtures/server.ts';
import {
  testApplication as redisApplication,
  redisUnavailable,
  redisUrl,
  removeKeys,
} from '../../packages/redis/src/fixtures/server.ts';
import {
  installApp,
  type Manifest,
  type PackedPackage,
  packAll,
  packageName,
  publishedPackages,
  readManifest,
  run,
  workspaceRoot,
} from './install.ts';

/** The module specifiers of a file's static imports and re-exports, `import()` calls and side-effect imports. */
function importedSpecifiers(source: string): string[] {
  const statements =
    /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm;
  return [...source.matchAll(statements)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
}

// A plain Node: no tsx, no source condition, nothing preloaded by the test runner.
const { NODE_OPTIONS: _, ...plainEnv } = process.env;
let work = '';
let app = '';
let packed: PackedPackage[] = [];
let manifests: Manifest[] = [];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'factline-pack-'));
  app = join(work, 'app');
  packed = await packAll(work);
  const tarballs = packed.map((p) => join(work, p.filename));
  // zod and tsx: the command line's example and a TypeScript registry, as an app using it would have them.
  manifests = await installApp(app, tarballs, ['typescript', '@types/node', 'zod', 'tsx']);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('npm pack ships each package built, with README and LICENSE, and no tests, fixtures or build info', () => {
  assert.deepEqual(packed.map((p) => p.name).sort(), publishedPackages.map(packageName).sort());
  for (const tarball of packed) {
    const files = new Set(tarball.files.map((f) => f.path));
    for (const required of ['package.json', 'README.md', 'LICENSE']) {
      assert.ok(files.has(required), `${tarball.name} ships ${required}`);
    }
    const manifest = manifests.find((m) => m.name === tarball.name);
    assert.ok(manifest, `${tarball.name} was installed`);
    for (const conditions of Object.values(manifest.exports)) {
      for (const target of Object.values(conditions)) {
        assert.ok(files.has(target.replace(/^\.\//, '')), `${tarball.name} ships its export ${target}`);
      }
    }
    const unwanted = [...files].filter((f) => /\.test\.ts$|(^|\/)fixtures\/|\.tsbuildinfo$/.test(f));
    assert.deepEqual(unwanted, [], `${tarball.name} ships no tests, fixtures or build info`);
  }
});

test('the adapters take @factline/core as a peer, so an app holds one copy of it', () => {
  const core = readManifest(join(workspaceRoot, 'packages/core'));
  for (const name of publishedPackages.filter((n) => n !== 'core')) {
    const manifest = readManifest(join(workspaceRoot, 'packages', name));
    assert.equal(manifest.peerDependencies?.['@factline/core'], core.version, `${manifest.name} peers on core`);
    assert.equal(manifest.dependencies?.['@factline/core'], undefined, `${manifest.name} does not bundle core`);
  }
  const scoped = publishedPackages.filter((name) => packageName(name).startsWith('@factline/'));
  assert.deepEqual(readdirSync(join(app, 'node_modules/@factline')).sort(), [...scoped].sort());
});

test('every bare import a shipped file makes is a declared dependency or peer', () => {
  for (const manifest of manifests) {
    const declared = new Set([
      manifest.name,
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
    ]);
    const dist = join(app, 'node_modules', manifest.name, 'dist');
    const files = readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => /\.(js|d\.ts)$/.test(f));
    for (const file of files) {
      const source = readFileSync(join(dist, file), 'utf8');
      for (const specifier of importedSpecifiers(source)) {
        if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
        const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
        assert.ok(declared.has(name ?? ''), `${manifest.name}/dist/${file} imports ${specifier}, not declared`);
      }
    }
  }
});

test('plain Node imports every entry of every package from its dist', async () => {
  const counts = JSON.parse(await run(process.execPath, ['entries.mjs'], { cwd: app, env: plainEnv })) as Record<
    string,
    number
  >;
  const expected = manifests.flatMap((m) => Object.keys(m.exports).map((key) => m.name + key.slice(1)));
  assert.deepEqual(Object.keys(counts).sort(), expected.sort());
  for (const [specifier, count] of Object.entries(counts)) assert.ok(count > 0, `${specifier} exports names`);
});

test('the READMEs examples type-check with skipLibCheck off, then run with plain Node', async (t) => {
  const tsc = join(app, 'node_modules/typescript/bin/tsc');
  await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, env: plainEnv });
  const core = await run(process.execPath, ['dist/core.js'], { cwd: app, env: plainEnv });
  assert.deepEqual(JSON.parse(core), { state: { total: 5 }, version: 2 });
  const sqlite = await run(process.execPath, ['dist/sqlite.js'], { cwd: app, env: plainEnv });
  assert.deepEqual(JSON.parse(sqlite), [['order-1', 1, 'OrderPlaced']]);
  const cli = await run(process.execPath, ['dist/cli.js'], { cwd: app, env: plainEnv });
  assert.deepEqual(JSON.parse(cli), [['field-removed', '$.total']]);
  const noBroker = await rabbitUnavailable();
  if (noBroker) t.diagnostic(`the RabbitMQ example did not run: ${noBroker}`);
  else {
    const application = testApplication('pack');
    try {
      const env = { ...plainEnv, AMQP_URL: amqpUrl, FACTLINE_APPLICATION: application };
      const rabbitmq = await run(process.execPath, ['dist/rabbitmq.js'], { cwd: app, env });
      assert.deepEqual(JSON.parse(rabbitmq), { type: 'OrderPlaced', key: 'order-1' });
    } finally {
      await removeTopology([{ declared: namesOf(application, [['orders', 'billing']]) }]);
    }
  }
  const noNats = await natsUnavailable();
  if (noNats) t.diagnostic(`the NATS example did not run: ${noNats}`);
  else {
    const application = natsApplication('pack');
    try {
      const env = { ...plainEnv, NATS_URL: natsUrl, FACTLINE_APPLICATION: application };
      const nats = await run(process.execPath, ['dist/nats.js'], { cwd: app, env });
      assert.deepEqual(JSON.parse(nats), { type: 'OrderPlaced', key: 'order-1' });
    } finally {
      await removeStreams([application]);
    }
  }
  const noRedis = await redisUnavailable();
  if (noRedis) t.diagnostic(`the Redis example did not run: ${noRedis}`);
  else {
    const application = redisApplication('pack');
    try {
      const env = { ...plainEnv, REDIS_URL: redisUrl, FACTLINE_APPLICATION: application };
      const redis = await run(process.execPath, ['dist/redis.js'], { cwd: app, env });
      assert.deepEqual(JSON.parse(redis), { type: 'OrderPlaced', key: 'order-1', handled: 1 });
    } finally {
      await removeKeys(application);
    }
  }
  const skip = await postgresUnavailable();
  if (skip) return t.skip(skip);
  const schema = testSchema('pack');
  try {
    const env = { ...plainEnv, DATABASE_URL: postgresUrl, FACTLINE_SCHEMA: schema };
    const postgres = await run(process.execPath, ['dist/postgres.js'], { cwd: app, env });
    assert.deepEqual(JSON.parse(postgres), { position: 1, types: ['OrderPlaced'] });
  } finally {
    await dropSchema(schema);
  }
});

test('each package README embeds its example verbatim', () => {
  for (const name of publishedPackages) {
    const readme = readFileSync(join(workspaceRoot, 'packages', name, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/<!-- snippet: (\S+) -->\n```ts\n([\s\S]*?)```/g)];
    assert.equal(blocks.length, 1, `packages/${name}/README.md embeds one example`);
    for (const [, path, code] of blocks) {
      assert.equal(code, readFileSync(join(workspaceRoot, path ?? ''), 'utf8'), `packages/${name}/README.md is stale`);
    }
  }
});

test('the factline bin runs with plain Node from its dist on a TypeScript registry', async () => {
  const bin = join(app, 'node_modules/factline/dist/bin.js');
  writeFileSync(
    join(app, 'registry.ts'),
    "import { z } from 'zod';\nexport default [{ kind: 'event' as const, type: 'Paid', version: 1, schema: z.object({ amount: z.number() }) }];\n",
  );
  const factline = (...args: string[]) => run(process.execPath, [bin, 'schema', ...args], { cwd: app, env: plainEnv });
  assert.match(await factline('snapshot', '--registry', 'registry.ts'), /wrote events\/Paid\.v1\.json/);
  const report = JSON.parse(await factline('check', '--registry', 'registry.ts', '--json'));
  assert.deepEqual(report, { ok: true, problems: [], notices: [] });
});
