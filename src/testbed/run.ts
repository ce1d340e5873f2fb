// One test bed run: a fresh prefix, a lease file that tells the sweeper this run is alive, and
// a cleanup registry that owns everything the run creates (namespaces, cgroups, pins, children).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRunPinDir, removePinDir } from './bpffs.js';
import { createRunCgroup, removeCgroupTree } from './cgroup.js';
import { Cleanup } from './cleanup.js';
import { newRunPrefix, netnsName } from './names.js';
import { createNetns, deleteNetns } from './netns.js';

/** Lease files: `<prefix>` holding `<pid> <start time>` of the process that owns the run. */
export const LEASE_DIR = '/run/sluice-testbed/runs';

/** Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), or null. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** True when the lease of run `prefix` names a process that is still running. */
export function runIsAlive(prefix: string): boolean {
  let text: string;
  try {
    text = readFileSync(join(LEASE_DIR, prefix), 'utf8');
  } catch {
    return false;
  }
  const [pid, start] = text.trim().split(' ');
  return pid !== undefined && start !== undefined && processStartTime(Number(pid)) === start;
}

export class TestbedRun {
  /** Prefixes of the runs this process started (a test asking what its own runs left behind). */
  static readonly startedHere = new Set<string>();
  private readonly netnsCleanups = new Map<string, () => Promise<void>>();
  private cgroupRoot: string | undefined;
  private pinRoot: string | undefined;

  private constructor(
    readonly prefix: string,
    readonly cleanup: Cleanup,
  ) {}

  /** Starts a run: picks an unused prefix and writes its lease (removed by the cleanup, last). */
  static async start(cleanup = new Cleanup()): Promise<TestbedRun> {
    await mkdir(LEASE_DIR, { recursive: true });
    const start = processStartTime(process.pid);
    for (let attempt = 0; attempt < 20; attempt++) {
      const prefix = newRunPrefix();
      try {
        await writeFile(join(LEASE_DIR, prefix), `${process.pid} ${start}\n`, { flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      cleanup.add(`lease ${prefix}`, () => rm(join(LEASE_DIR, prefix), { force: true }));
      TestbedRun.startedHere.add(prefix);
      return new TestbedRun(prefix, cleanup);
    }
    throw new Error(`testbed: no free run prefix in ${LEASE_DIR} after 20 attempts`);
  }

  /** Creates network namespace `slt-<prefix>-<name>` (deleted by the cleanup). */
  async netns(name: string): Promise<string> {
    const ns = netnsName(this.prefix, name);
    this.netnsCleanups.set(ns, this.cleanup.add(`netns ${ns}`, () => deleteNetns(ns)));
    await createNetns(ns);
    return ns;
  }

  /** Deletes a namespace made by netns() now, rather than at the end of the run. */
  async deleteNetns(ns: string): Promise<void> {
    const release = this.netnsCleanups.get(ns);
    if (!release) throw new Error(`testbed: network namespace ${ns} was not created by run ${this.prefix}`);
    this.netnsCleanups.delete(ns);
    await release();
  }

  /** The run's cgroup subtree `<cgroup2>/sluice-test-<prefix>` (created once, removed by the cleanup). */
  async cgroup(): Promise<string> {
    if (!this.cgroupRoot) {
      const path = await createRunCgroup(this.prefix);
      this.cgroupRoot = path;
      this.cleanup.add(`cgroup ${path}`, () => removeCgroupTree(path));
    }
    return this.cgroupRoot;
  }

  /** The run's bpffs pin directory `/sys/fs/bpf/sluice-test-<prefix>` (removed by the cleanup). */
  async pinDir(): Promise<string> {
    if (!this.pinRoot) {
      const path = await createRunPinDir(this.prefix);
      this.pinRoot = path;
      this.cleanup.add(`pin dir ${path}`, () => removePinDir(path));
    }
    return this.pinRoot;
  }

  /** Kills `child` (SIGKILL) at cleanup unless it has exited by then. */
  own(child: ChildProcess, what = `child ${child.pid}`): ChildProcess {
    this.cleanup.add(what, () => killAndWait(child));
    return child;
  }

  /**
   * Cleans up and exits non-zero on SIGINT, SIGTERM or an uncaught exception (see
   * Cleanup.handleProcessEvents) until the run is destroyed.
   */
  handleProcessEvents(): void {
    this.cleanup.add('process event handlers', this.cleanup.handleProcessEvents());
  }

  /** Runs the cleanup (idempotent). */
  destroy(): Promise<void> {
    return this.cleanup.runAll();
  }
}

/** SIGKILLs a child process and waits for its exit (no-op when it already exited). */
export function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
