import { resolve } from 'node:path';

/** What a command needs from its surroundings, so the CLI runs in a test as in a terminal. */
export interface CliContext {
  cwd: string;
  stdout(line: string): void;
  stderr(line: string): void;
  /** Environment variables (`FACTLINE_DB`). */
  env: Readonly<Record<string, string | undefined>>;
  /** Whether a person can answer a question (stdin and stderr are terminals). */
  interactive: boolean;
  /** Asks on the terminal and resolves with the answer's line. */
  ask(question: string): Promise<string>;
  /** Aborted on SIGINT: a command that follows (`events tail`) stops and exits 0. */
  signal: AbortSignal;
  /**
   * Called by a command that stops by itself when `signal` aborts (it
   * follows Ctrl-C). For any other command Ctrl-C ends the process at once,
   * with exit code 130, as a program that does not handle it.
   */
  followInterrupt(): void;
  /** Set by a command: 0 fine, 1 not found or a check failed, 2 usage, connection or load error. */
  exitCode: number;
  /** A path given on the command line, from `cwd`. */
  resolve(path: string): string;
}

export type CliIo = Pick<CliContext, 'cwd' | 'stdout' | 'stderr'> & Partial<CliContext>;

/**
 * Control characters other than a line break or a tab (C0, DEL, C1) and lone
 * surrogates, as `\uXXXX`: text the CLI prints comes from messages and
 * events other programs wrote, and an escape sequence in a message type
 * would otherwise reach the operator's terminal as a command. JSON output
 * stays JSON (these escapes read back as the same characters).
 */
const unprintable =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function printable(text: string): string {
  return text.replace(unprintable, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function createCliContext(io: CliIo): CliContext {
  return {
    env: {},
    interactive: false,
    ask: () => Promise.resolve(''),
    signal: new AbortController().signal,
    followInterrupt: () => undefined,
    ...io,
    stdout: (line) => io.stdout(printable(line)),
    stderr: (line) => io.stderr(printable(line)),
    exitCode: 0,
    resolve: (path) => resolve(io.cwd, path),
  };
}
