// What /proc tells about a process the benches started (the agent): CPU time and resident memory.
import { readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ, what /proc/<pid>/stat counts in

/** utime + stime of `pid` in seconds. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS; // fields 14 and 15 of proc(5)
}

/** VmRSS (or, with `peak`, VmHWM) of `pid` in bytes. */
export function processRssBytes(pid: number, peak = false): number {
  const m = new RegExp(`^${peak ? 'VmHWM' : 'VmRSS'}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${peak ? 'VmHWM' : 'VmRSS'} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}
