/** A usage or load problem: the command line prints its message as one line and exits 2. */
export class CliError extends Error {
  override name = 'CliError';
}
