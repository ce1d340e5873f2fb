// Runs external commands (ip, bpftool, sysctl, ...) by argv, never through a shell string, and
// turns failures into errors that name the command and carry its stderr.
import { execFile } from 'node:child_process';

export interface RunOptions {
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  /** Extra environment on top of process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve instead of reject on a non-zero exit status. */
  allowFailure?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when the process died of a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
    reason: string,
  ) {
    super(`testbed: \`${argv.join(' ')}\` ${reason}${result.stderr.trim() ? ': ' + result.stderr.trim() : ''}`);
    this.name = 'CommandError';
  }
}

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('testbed: run() needs a command'));
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        timeout: opts.timeoutMs ?? 30_000,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        cwd: opts.cwd,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (!err) return resolve({ stdout, stderr, code: 0, signal: null });
        const e = err as NodeJS.ErrnoException & { code?: unknown; signal?: NodeJS.Signals | null; killed?: boolean };
        if (typeof e.code === 'string') {
          // Spawn failure (ENOENT: command not installed, EACCES, ...).
          return reject(new Error(`testbed: cannot run \`${argv.join(' ')}\`: ${e.code} ${e.message}`));
        }
        const result: RunResult = {
          stdout,
          stderr,
          code: typeof e.code === 'number' ? e.code : null,
          signal: e.signal ?? null,
        };
        if (opts.allowFailure && result.signal === null) return resolve(result);
        const reason = e.killed && result.signal === 'SIGKILL'
          ? `timed out after ${opts.timeoutMs ?? 30_000} ms`
          : result.signal ? `died of ${result.signal}` : `exited with status ${result.code}`;
        reject(new CommandError(argv, result, reason));
      },
    );
  });
}

/**
 * `argv` run so that the kernel SIGKILLs it when the process that spawned it dies
 * (PR_SET_PDEATHSIG, set by util-linux's setpriv, kept across the exec chain of netnsArgv). For
 * long-lived children such as agents: a test file killed by tap's timeout (SIGKILL) runs no
 * cleanup, and the sweeper removes a dead run's namespaces and pins but cannot see a process
 * outside its cgroups, so an agent would live on, re-pinning and attaching.
 */
export function boundToParent(argv: readonly string[]): string[] {
  if (argv.length === 0) throw new Error('testbed: boundToParent needs a command');
  return ['setpriv', '--pdeathsig', 'KILL', '--', ...argv];
}
