// Finds and removes what crashed earlier runs left behind: `slt-*` namespaces, `sluice-test-*`
// cgroups and pin directories whose run lease names no live process. Live runs (a parallel
// test file, a running demo) are left alone. Things made without a lease (code that calls the
// low-level helpers directly) are only removed once nothing touched them for a while.
import { existsSync, statSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BPFFS_ROOT, removePinDir } from './bpffs.js';
import { cgroup2Mount, removeCgroupTree } from './cgroup.js';
import { DIR_PREFIX, NETNS_PREFIX, runPrefixOf } from './names.js';
import { deleteNetns, listNetns, netnsPath } from './netns.js';
import { LEASE_DIR, runIsAlive } from './run.js';

export interface SweepReport {
  netns: string[];
  cgroups: string[];
  pinDirs: string[];
  leases: string[];
  /** Prefixes seen whose run is still alive (left alone). */
  liveRuns: string[];
  /** Lease-less things touched too recently to call abandoned (left alone). */
  recent: string[];
  /** Removal failures, one message each. */
  errors: string[];
}

export interface SweepOptions {
  /** Only report what would be removed. */
  dryRun?: boolean;
  cgroupMount?: string;
  /** A thing without a lease is abandoned once unchanged for this long (default 10 minutes). */
  unleasedMinAgeMs?: number;
  /** Restricts the sweep to runs whose prefix passes this test (default: all runs). */
  only?: (prefix: string) => boolean;
}

/** Milliseconds since `path` (or its directory listing) last changed; 0 when it cannot be read. */
function idleMs(path: string): number {
  try {
    const st = statSync(path);
    return Date.now() - Math.max(st.mtimeMs, st.ctimeMs);
  } catch {
    return 0;
  }
}

async function dirsStartingWith(dir: string, prefix: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && e.name.startsWith(prefix)).map((e) => e.name);
}

export async function sweepLeftovers(opts: SweepOptions = {}): Promise<SweepReport> {
  const report: SweepReport = {
    netns: [], cgroups: [], pinDirs: [], leases: [], liveRuns: [], recent: [], errors: [],
  };
  const minAge = opts.unleasedMinAgeMs ?? 10 * 60_000;
  const live = new Set<string>();
  const isStale = (name: string, path: string): boolean => {
    const prefix = runPrefixOf(name);
    if (prefix === null || (opts.only && !opts.only(prefix))) return false;
    if (runIsAlive(prefix)) {
      live.add(prefix);
      return false;
    }
    if (!existsSync(join(LEASE_DIR, prefix)) && idleMs(path) < minAge) {
      report.recent.push(path);
      return false;
    }
    return true;
  };
  const attempt = async (list: string[], what: string, fn: () => Promise<void>) => {
    try {
      if (!opts.dryRun) await fn();
      list.push(what);
    } catch (err) {
      report.errors.push(err instanceof Error ? err.message : String(err));
    }
  };

  for (const ns of await listNetns()) {
    if (ns.startsWith(NETNS_PREFIX) && isStale(ns, netnsPath(ns))) await attempt(report.netns, ns, () => deleteNetns(ns));
  }
  const mount = opts.cgroupMount ?? cgroup2Mount();
  for (const name of await dirsStartingWith(mount, DIR_PREFIX)) {
    const path = join(mount, name);
    if (isStale(name, path)) await attempt(report.cgroups, path, () => removeCgroupTree(path, mount));
  }
  for (const name of await dirsStartingWith(BPFFS_ROOT, DIR_PREFIX)) {
    const path = join(BPFFS_ROOT, name);
    if (isStale(name, path)) await attempt(report.pinDirs, path, () => removePinDir(path));
  }
  if (existsSync(LEASE_DIR)) {
    for (const prefix of await readdir(LEASE_DIR)) {
      if (/^sl[0-9a-f]{4}$/.test(prefix) && (!opts.only || opts.only(prefix)) && !runIsAlive(prefix)) {
        await attempt(report.leases, prefix, () => rm(join(LEASE_DIR, prefix), { force: true }));
      }
    }
  }
  report.liveRuns = [...live].sort();
  return report;
}
