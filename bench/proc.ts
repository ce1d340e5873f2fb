// What /proc tells the benches: a process's CPU time and resident memory (the agent), and the
// whole machine's CPU time; and what the kernel counts of a BPF program's runs.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ, what /proc/<pid>/stat counts in

/** The command name and utime / stime (seconds) of a process's or a thread's `stat` file. */
export function statCpu(statPath: string): { comm: string; user: number; system: number } {
  const stat = readFileSync(statPath, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 of proc(5)
  return { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), user: Number(fields[11]) / TICKS, system: Number(fields[12]) / TICKS };
}

/** utime + stime of `pid` in seconds. */
export function processCpuSeconds(pid: number): number {
  const { user, system } = statCpu(`/proc/${pid}/stat`);
  return user + system;
}

/** VmRSS (or, with `peak`, VmHWM) of `pid` in bytes. */
export function processRssBytes(pid: number, peak = false): number {
  const m = new RegExp(`^${peak ? 'VmHWM' : 'VmRSS'}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${peak ? 'VmHWM' : 'VmRSS'} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** The whole machine's CPU time so far, in seconds: /proc/stat's first line. */
export interface MachineCpuTimes { user: number; nice: number; system: number; irq: number; softirq: number; steal: number }

export function machineCpuTimes(): MachineCpuTimes {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] as string;
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number) as number[];
  const s = (v: number | undefined) => (v ?? 0) / TICKS;
  return { user: s(user), nice: s(nice), system: s(system), irq: s(irq), softirq: s(softirq), steal: s(steal) };
}

/** Busy seconds in a machineCpuTimes() reading: everything but idle and iowait. */
export function busySeconds(t: MachineCpuTimes): number {
  return t.user + t.nice + t.system + t.irq + t.softirq + t.steal;
}

/**
 * Runs and run time (ns) the kernel counted for BPF programs (bpftool; counted only while
 * kernel.bpf_stats_enabled is 1), summed over `ids`.
 */
export function programRunStats(ids: readonly number[]): { cnt: number; ns: number } {
  let cnt = 0;
  let ns = 0;
  for (const id of ids) {
    const j = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(id)], { encoding: 'utf8' })) as { run_cnt?: number; run_time_ns?: number };
    cnt += j.run_cnt ?? 0;
    ns += j.run_time_ns ?? 0;
  }
  return { cnt, ns };
}
