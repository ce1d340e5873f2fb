// Keeps every CPU out of idle while the connect bench measures (issue 17).
//
// Why: on a quiet VM a short ping-pong (client → echo server → client, ~0.25 ms) pays, about half
// the time, the wake-up of a halted vCPU (HLT → VM exit → the host reschedules the vCPU → IPI):
// per-measurement p50s came out ~0.25 ms or ~1.3–1.9 ms by chance, on every path alike, so ratios
// against direct swung 0.16–5×. Under load the CPUs never halt and the same bench is steady.
//
// What: one busy-loop per CPU, pinned to it, at SCHED_IDLE (`chrt --idle 0`), and — where the
// cgroup v1 cpu controller offers it — in a cpu cgroup of the run with `cpu.idle = 1`, so that
// it is idle-priority against every other task of the machine and not only against its own
// session's (with autogroups on, a SCHED_IDLE task in a session alone would otherwise get its
// session's full share). A waking task preempts such a spinner at once (the scheduler treats a
// CPU running only idle-policy work as idle when it places a wakee), so the spinners take no CPU
// time from real work; they only keep the vCPU running, so nothing halts. The same for every path
// of a round: they are held from a scale's warm-up to the end of its rounds (interleaving
// unchanged), and released before throughput and agent starts (whose CPU figures they would
// inflate).
//
// `/dev/cpu_dma_latency` (PM QoS, 0 written, held open) is the standard way on hardware, but it
// acts through the cpuidle governor: with no cpuidle driver (`cpuidle/current_driver` is `none`
// on this VM: idle is a plain HLT) it changes nothing — measured, see docs/benchmarks.md — so it
// is not used.
//
// Released always: the spinners are owned by the test-bed run (SIGKILLed by its cleanup on exit,
// failure, SIGINT and SIGTERM) and carry a parent-death signal (`setpriv --pdeathsig KILL`), so a
// SIGKILLed bench leaves no spinner either; the cpu cgroup is removed by the same cleanup.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { runDirName } from '../src/testbed/names.js';
import type { TestbedRun } from '../src/testbed/run.js';
import { killAndWait } from '../src/testbed/run.js';

/** What the bench did to keep the CPUs awake, recorded in the results. */
export interface CpuAwakeMethod {
  method: 'idle-spinners' | 'none';
  /** Spinners (one per CPU, pinned). */
  spinners: number;
  policy: 'SCHED_IDLE';
  /** The cpu cgroup (v1) with cpu.idle = 1 they ran in, or null (SCHED_IDLE alone). */
  idleCgroup: string | null;
  /** The machine's cpuidle driver (`none`: idle is a plain halt; PM QoS has no effect). */
  cpuidleDriver: string;
  /** When held: from a scale's warm-up to the end of its rounds, every path alike. */
  held: string;
}

const CPU_V1 = '/sys/fs/cgroup/cpu';
const SCHED_IDLE = 5;

/** A process's scheduling policy (field 41 of /proc/<pid>/stat), or -1 when it is gone. */
export function schedPolicy(pid: number | undefined): number {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[38] ?? -1);
  } catch {
    return -1;
  }
}

export function cpuidleDriver(): string {
  try {
    return readFileSync('/sys/devices/system/cpu/cpuidle/current_driver', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** One line for the run's machine facts. */
export function describeCpuAwake(m: CpuAwakeMethod): string {
  if (m.method === 'none') return 'CPUs left to idle (no spinners)';
  return `CPUs kept out of idle while measuring: ${m.spinners} busy-loops, one pinned per CPU, at SCHED_IDLE` +
    `${m.idleCgroup ? ' in a cpu.idle=1 cgroup' : ''} (cpuidle driver ${m.cpuidleDriver}; ${m.held})`;
}

/** The cpu cgroup (v1) of a run with cpu.idle set, or null when the machine has none. */
async function idleCgroup(run: TestbedRun): Promise<string | null> {
  if (!existsSync(join(CPU_V1, 'cpu.idle'))) return null;
  const path = join(CPU_V1, `${runDirName(run.prefix)}-awake`);
  try {
    await mkdir(path);
    await writeFile(join(path, 'cpu.idle'), '1\n');
    return path;
  } catch {
    await rmdir(path).catch(() => undefined);
    return null;
  }
}

/** Kills whatever is still in the cgroup (only spinners are ever put there), then removes it. */
async function removeIdleCgroup(path: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    let pids: string[];
    try {
      pids = (await readFile(join(path, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean);
    } catch {
      return; // already gone
    }
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    try {
      await rmdir(path);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20)); // a killed task leaves the cgroup when reaped
    }
  }
  throw new Error(`cpu-awake: could not remove ${path}`);
}

export interface CpuAwake {
  method: CpuAwakeMethod;
  /** Starts the spinners (no-op when held or when the method is none). */
  hold(): Promise<void>;
  /** Stops them (no-op when not held). */
  release(): Promise<void>;
  /** The cgroup path to check for leftovers (null when none). */
  leftovers(): string[];
}

/**
 * The CPU-awake guard of a bench run: `enabled` false records method none and holds nothing.
 * The cgroup and any spinner left are removed by the run's cleanup.
 */
export async function createCpuAwake(run: TestbedRun, enabled: boolean): Promise<CpuAwake> {
  const n = cpus().length;
  const cgroup = enabled ? await idleCgroup(run) : null;
  const method: CpuAwakeMethod = {
    method: enabled ? 'idle-spinners' : 'none', spinners: enabled ? n : 0, policy: 'SCHED_IDLE', idleCgroup: cgroup, cpuidleDriver: cpuidleDriver(),
    held: 'from each scale\'s warm-up to the end of its rounds, for every path alike; released for throughput and agent starts',
  };
  let spinners: ChildProcess[] = [];
  let closed = false;
  const stop = async () => {
    const s = spinners;
    spinners = [];
    await Promise.all(s.map((c) => killAndWait(c)));
  };
  // One cleanup for both, spinners first: a hold() still under way when the cleanup runs (a
  // signal mid-hold) sees `closed` and stops; whatever it put in the cgroup is killed there.
  run.cleanup.add('cpu-awake spinners and cgroup', async () => {
    closed = true;
    await stop();
    if (cgroup) await removeIdleCgroup(cgroup);
  });
  return {
    method,
    async hold() {
      if (!enabled || closed || spinners.length > 0) return;
      for (let cpu = 0; cpu < n && !closed; cpu++) {
        const child = spawn('taskset', ['-c', String(cpu), 'chrt', '--idle', '0', 'setpriv', '--pdeathsig', 'KILL', 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' });
        spinners.push(child);
        child.once('error', () => undefined);
      }
      // Wait until every spinner runs at SCHED_IDLE (taskset → chrt → setpriv → sh takes a few
      // execs; under load that is more than a moment); one that exited is a failure, not a silent no-op.
      const deadline = Date.now() + 10_000;
      while (!closed && spinners.some((c) => schedPolicy(c.pid) !== SCHED_IDLE)) {
        const dead = spinners.filter((c) => c.exitCode !== null || c.signalCode !== null || !c.pid);
        if (dead.length > 0 || Date.now() > deadline) {
          await stop();
          throw new Error(`cpu-awake: ${dead.length > 0 ? `${dead.length} of ${n} spinners exited at once` : 'spinners not at SCHED_IDLE after 10 s'} ` +
            '(taskset, chrt and setpriv from util-linux are needed)');
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      // Into the cpu.idle cgroup only now: there the exec chain itself would wait for an idle CPU,
      // which a loaded machine may not have for many seconds.
      for (const c of spinners) if (cgroup && !closed && c.pid) await writeFile(join(cgroup, 'cgroup.procs'), `${c.pid}\n`);
      if (closed) await stop();
    },
    release: stop,
    leftovers: () => (cgroup && existsSync(cgroup) ? [cgroup] : []),
  };
}
