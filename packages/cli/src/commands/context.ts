import { resolve } from 'node:path';

/** What a command needs from its surroundings, so the CLI runs in a test as in a terminal. */
export interface CliContext {
  cwd: string;
  stdout(line: string): void;
  stderr(line: string): void;
  /** Set by a command: 0 fine, 1 a finding (breaking change), 2 usage or load error. */
  exitCode: number;
  /** A path given on the command line, from `cwd`. */
  resolve(path: string): string;
}

export function createCliContext(io: Pick<CliContext, 'cwd' | 'stdout' | 'stderr'>): CliContext {
  return { ...io, exitCode: 0, resolve: (path) => resolve(io.cwd, path) };
}
