import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { activeTracer, factlineMeter, loadOtelApi, tracingOn } from './otel.ts';

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname;

describe('@opentelemetry/api is optional', () => {
  it('loads as undefined when the package cannot be loaded', () => {
    const missing = Object.assign(new Error("Cannot find module '@opentelemetry/api'"), { code: 'MODULE_NOT_FOUND' });
    assert.equal(
      loadOtelApi(() => {
        throw missing;
      }),
      undefined,
    );
    assert.equal(
      loadOtelApi(() => ({})),
      undefined,
      'something that is not the API',
    );
    assert.ok(loadOtelApi(), 'installed here (a devDependency)');
  });

  it('takes the plain path while no SDK is registered: no tracer, no trace context', () => {
    assert.equal(tracingOn(), false);
    assert.equal(activeTracer(), undefined);
    assert.ok(factlineMeter(), 'the API’s no-op meter');
  });

  it('runs publish, consume and append in a process where the package is absent', () => {
    const out = execFileSync(
      process.execPath,
      [
        '--conditions=factline-source',
        '--require',
        fixture('hide-otel-api.cjs'),
        '--import',
        'tsx',
        fixture('without-otel-child.ts'),
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    const result = JSON.parse(out) as {
      api: boolean;
      tracing: boolean;
      seen: Record<string, Record<string, unknown>>[];
    };
    assert.equal(result.api, false, 'the API was hidden');
    assert.equal(result.tracing, false);
    assert.equal(result.seen.length, 1);
    const { message, event } = result.seen[0] as Record<string, Record<string, unknown>>;
    assert.equal(message?.traceparent, undefined);
    assert.equal(event?.traceparent, undefined);
    assert.equal(typeof event?.correlationId, 'string', 'correlation still flows');
  });
});
