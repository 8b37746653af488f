import { checkOptions } from '../options/check-options.ts';
import type { TransportPublishOptions } from './transport.ts';

/**
 * Checks `Transport.publish`'s options (the same on every transport) and
 * returns whether the publish requires a declared subscription.
 *
 * @example
 * const required = checkTransportPublishOptions(options); // ValidationError on unknown keys or wrong kinds
 */
export function checkTransportPublishOptions(options: TransportPublishOptions | undefined): boolean {
  checkOptions(options, { requireSubscription: 'boolean' }, 'publish');
  return options?.requireSubscription === true;
}
