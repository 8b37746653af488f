/**
 * The projection's name in a checkpoint's key (`order_summaries@v2` → `order_summaries`):
 * a pause is by name, for every version.
 *
 * @example
 * projectionName('order_summaries@v2'); // 'order_summaries'
 */
export const projectionName = (key: string): string => key.replace(/@v[0-9]+$/, '');
