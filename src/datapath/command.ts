// Runs a command (ip, tc) with a time bound that a busy event loop cannot turn into a false
// success. Node's own execFile `timeout` kills the child when its timer fires, and destroys the
// child's stdout first; when the loop was blocked for longer than the bound (a large sync: tens of
// seconds at 65k dual-stack Services on a loaded node), the timer fires late, after the child had
// already exited with its answer unread, and the callback reports success with EMPTY output.
// `ip -o addr show` then read as "no addresses": the NodePort addresses flapped to none and back,
// each flip a full resync that blocked the loop again (found by the connect bench's restart at
// 65k). Here an expired bound kills the child only if it is still running once the loop has
// handled its pending I/O (setImmediate runs after the poll phase, where a child's exit is seen).
import { execFile } from 'node:child_process';

export interface CommandOptions {
  /** Longest the command may run (default 10 s). */
  timeoutMs?: number;
  /** Largest stdout or stderr (default 64 MiB). */
  maxBuffer?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/**
 * The command's output; rejects when it cannot be run (the spawn error: `code` ENOENT, `path`),
 * exits non-zero (execFile's error, with `stdout` and `stderr`) or outlives the bound.
 */
export function runCommand(argv: readonly string[], opts: CommandOptions = {}): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const child = execFile(argv[0] as string, argv.slice(1), { maxBuffer: opts.maxBuffer ?? 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      clearTimeout(timer);
      if (timedOut) reject(Object.assign(new Error(`\`${argv.join(' ')}\` gave no answer within ${timeoutMs} ms`), { stdout, stderr }));
      else if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
    const timer = setTimeout(() => setImmediate(() => {
      if (child.exitCode !== null || child.signalCode !== null) return; // exited: its answer is coming
      timedOut = true;
      child.kill('SIGKILL');
    }), timeoutMs);
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
