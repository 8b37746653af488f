import { describeValue } from '../options/check-options.ts';

/** One level of a `Logger`: pino's shape, `(obj, msg?)` or `(msg)`. */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

/**
 * What the runtimes report to (consumers, projection runners, outbox
 * relays): the shape of pino, so a pino logger (or a child of one) is one;
 * any object with these four methods will do. Default: `silentLogger`, no
 * output: library code never writes to the console.
 */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const nothing = () => {};

/** The default logger: drops everything. */
export const silentLogger: Logger = { debug: nothing, info: nothing, warn: nothing, error: nothing };

/** Why `value` is not a `Logger`, for `checkOptions`; `undefined` when it is one. */
export const loggerKind = (value: unknown): string | undefined =>
  typeof value === 'object' &&
  value !== null &&
  ['debug', 'info', 'warn', 'error'].every((level) => typeof (value as Record<string, unknown>)[level] === 'function')
    ? undefined
    : `must be a logger with debug, info, warn and error methods (pino's shape), got ${describeValue(value)}`;

/**
 * Writes one record at `level`; a logger that throws changes nothing (a
 * runtime must not stop because its logging failed).
 *
 * @example
 * log(options.logger, 'warn', { consumer: 'billing', messageId, err: error }, 'message dead-lettered');
 */
export function log(logger: Logger | undefined, level: keyof Logger, obj: object, msg: string): void {
  if (logger === undefined || logger === silentLogger) return;
  try {
    logger[level](obj, msg);
  } catch {
    // The logger's own failure changes nothing.
  }
}
