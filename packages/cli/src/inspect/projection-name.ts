/**
 * The projection's name in a checkpoint's key (`order_summaries@v2` → `order_summaries`):
 * a pause is by name, for every version.
 *
 * @example
 * projectionName('order_summaries@v2'); // 'order_summaries'
 */
export const projectionName = (key: string): string => key.replace(/@v[0-9]+$/, '');

/**
 * The checkpoint's key of version `version` of projection `name`: the name
 * itself for version 1, `<name>@v<version>` above.
 *
 * @example
 * projectionKey('order_summaries', 2); // 'order_summaries@v2'
 */
export const projectionKey = (name: string, version: number): string => (version === 1 ? name : `${name}@v${version}`);
