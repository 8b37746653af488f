import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { registerTestSdk } from './fixtures/otel-sdk.ts';
import { activeTracer, currentSpan, tracingOn } from './otel.ts';

describe('tracingOn', () => {
  it('follows an SDK registered, disabled and registered again, asked before and after each', async () => {
    assert.equal(tracingOn(), false);
    assert.equal(activeTracer(), undefined);
    const first = registerTestSdk();
    assert.equal(tracingOn(), true);
    assert.notEqual(activeTracer(), undefined);
    await first.shutdown();
    assert.equal(tracingOn(), false);
    assert.equal(currentSpan(), undefined);
    const second = registerTestSdk();
    try {
      assert.equal(tracingOn(), true);
      // Spans go to the provider registered last.
      activeTracer()?.startSpan('after re-registration').end();
      assert.deepEqual(
        second.spans.getFinishedSpans().map((s) => s.name),
        ['after re-registration'],
      );
      assert.deepEqual(first.spans.getFinishedSpans(), []);
    } finally {
      await second.shutdown();
    }
    assert.equal(tracingOn(), false);
  });
});
