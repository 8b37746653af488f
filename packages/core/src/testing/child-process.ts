import { type ChildProcess, spawn } from 'node:child_process';

export interface TestChild {
  child: ChildProcess;
  /** What the child printed so far. */
  stdout(): string;
  /**
   * Resolves when the child ended with code 0 or was killed with SIGKILL (its
   * output read to the end); rejects with its stderr otherwise.
   */
  exited: Promise<number | null>;
}

/**
 * Runs a TypeScript fixture as a child process (source conditions, tsx) and
 * collects its output, for tests that kill processes or run several at once.
 */
export function spawnTestChild(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): TestChild {
  const child = spawn(process.execPath, ['--conditions=factline-source', '--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    // 'close': the process ended and its output was read to the end.
    child.on('close', (code, signal) => {
      if (code === 0 || signal === 'SIGKILL') resolve(code);
      else reject(new Error(`child ${script} exited ${code ?? signal}: ${stderr}`));
    });
  });
  exited.catch(() => undefined);
  return { child, stdout: () => stdout, exited };
}
