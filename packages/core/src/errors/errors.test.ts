import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FactlineError,
  isFactlineError,
  isNonRetryableError,
  isNoSubscriptionError,
  isStoreClosedError,
  isValidationError,
  NonRetryableError,
  NoSubscriptionError,
  StoreClosedError,
  ValidationError,
} from './index.ts';

describe('errors', () => {
  it('a NonRetryableError has its own code and is not a ValidationError', () => {
    const error = new NonRetryableError('unknown sku', { cause: new Error('lookup') });
    assert.equal(error.code, 'NON_RETRYABLE');
    assert.equal(error.name, 'NonRetryableError');
    assert.equal(error.retryable, false);
    assert.ok(isNonRetryableError(error));
    assert.equal(isValidationError(error), false);
    assert.ok(error.cause instanceof Error);
    assert.equal(isNonRetryableError(new ValidationError({ path: 'x', message: 'y' })), false);
  });

  it('a NoSubscriptionError names its topic and is retryable', () => {
    const error = new NoSubscriptionError('orders');
    assert.equal(error.code, 'NO_SUBSCRIPTION');
    assert.equal(error.topic, 'orders');
    assert.equal(error.retryable, true);
    assert.match(error.message, /'orders' has no subscription/);
    assert.ok(isNoSubscriptionError(error));
  });

  it('a StoreClosedError says what closed', () => {
    assert.equal(new StoreClosedError().message, 'The event store is closed');
    assert.equal(new StoreClosedError('transport').message, 'The transport is closed');
    assert.ok(isStoreClosedError(new StoreClosedError('inbox')));
  });

  it('guards recognise an error from another copy of the package by its marker, not its class', () => {
    const foreign = Object.assign(new Error('x'), { code: 'NON_RETRYABLE', retryable: false });
    Object.defineProperty(foreign, Symbol.for('factline.error'), { value: true });
    assert.ok(isFactlineError(foreign));
    assert.ok(isNonRetryableError(foreign));
    assert.equal(isFactlineError(new Error('plain')), false);
    assert.ok(new NonRetryableError('x') instanceof FactlineError);
  });
});
