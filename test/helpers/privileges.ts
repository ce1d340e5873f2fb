// Gate for privileged tests (BPF, namespaces, cgroups). A test may skip only where the machine
// truly lacks what it needs, saying why; under CI=true a missing privilege fails the test
// instead, so CI can never go green by skipping.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { bpffsMounted, BPFFS_ROOT } from '../../src/testbed/bpffs.js';
import { cgroup2Mount } from '../../src/testbed/cgroup.js';

const execFileP = promisify(execFile);

interface TapLike {
  plan(n: number, comment?: string): void;
  fail(message: string): void;
  comment(...msg: unknown[]): void;
}

async function hasCommand(cmd: string, args: string[]): Promise<boolean> {
  try {
    await execFileP(cmd, args, { timeout: 10_000 });
    return true;
  } catch (err) {
    // Spawn failures carry a string code (ENOENT); a non-zero exit still proves it exists.
    return typeof (err as { code?: unknown }).code !== 'string';
  }
}

/** Why privileged tests cannot run here, or null when they can. Cheap, and cached per process. */
async function probe(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not running as root';
  for (const [cmd, args] of [['ip', ['-V']], ['bpftool', ['version']], ['nsenter', ['--version']],
    ['unshare', ['--version']], ['mountpoint', ['--version']]] as const) {
    if (!(await hasCommand(cmd, [...args]))) return `${cmd} is not installed (run scripts/setup.sh)`;
  }
  if (!bpffsMounted()) return `bpffs is not mounted at ${BPFFS_ROOT} (run scripts/setup.sh)`;
  try {
    cgroup2Mount();
  } catch (err) {
    return (err as Error).message;
  }
  // Can we really create a BPF object? (Seccomp, lockdown or a missing CONFIG_BPF_SYSCALL say no.)
  let dir: string | undefined;
  try {
    dir = await mkdtemp(join(BPFFS_ROOT, 'sluice-probe-'));
    await execFileP('bpftool', ['map', 'create', join(dir, 'probe'), 'type', 'array', 'key', '4',
      'value', '4', 'entries', '1', 'name', 'sl_probe'], { timeout: 10_000 });
  } catch (err) {
    return `cannot create a BPF map: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`;
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
  return null;
}

let cached: Promise<string | null> | undefined;

/** The reason privileged tests cannot run here, or null when they can. */
export function privilegeProblem(): Promise<string | null> {
  cached ??= probe();
  return cached;
}

/**
 * `if (!(await requirePrivileges(t))) return;` at the top of a privileged test. Returns true
 * when root, bpffs, cgroup2 and the BPF syscall all work. Otherwise marks the test skipped with
 * the reason — or, when CI=true, fails it.
 */
export async function requirePrivileges(t: TapLike): Promise<boolean> {
  return applyPrivilegeProblem(t, await privilegeProblem(), process.env.CI === 'true');
}

/** The decision behind requirePrivileges, separate so it can be tested without losing root. */
export function applyPrivilegeProblem(t: TapLike, problem: string | null, ci: boolean): boolean {
  if (problem === null) return true;
  if (ci) {
    t.fail(`privileged test cannot run under CI: ${problem}`);
    return false;
  }
  t.comment(`skipping privileged test: ${problem}`);
  t.plan(0, `needs BPF privileges: ${problem}`);
  return false;
}
