// Attaching the datapath programs so that an agent restart never leaves a gap:
// - cgroup (connect-time) programs are bpf_links pinned under <pinDir>/links/. A restarted agent
//   finds the pinned link and swaps in its freshly loaded program with bpf_link_update: the hook
//   stays attached throughout.
// - TC programs are direct-action filters at a handle and priority that Sluice owns, attached
//   with replace: re-attaching swaps the program in place.
// Cleanup removes exactly those links, filters and pins, nothing else.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { hasErrnoCode } from '../bpf/errors.js';
import type { NativeAddon, NativeProgram, TcDirection } from '../bpf/native.js';

/** The connect-time programs of connect.bpf.o (bpf/connect.bpf.c). */
export const CONNECT_PROGRAMS = ['sl_connect4', 'sl_sendmsg4', 'sl_recvmsg4', 'sl_getpeername4'] as const;
/** The TC programs of tc.bpf.o by hook: what the pod sends (ingress of its host veth), what it receives. */
export const TC_PROGRAMS: Readonly<Record<TcDirection, string>> = { ingress: 'sl_tc_from_pod', egress: 'sl_tc_to_pod' };
/** The TC programs of host.bpf.o for the node's host-facing interfaces (external traffic). */
export const HOST_TC_PROGRAMS: Readonly<Record<TcDirection, string>> = { ingress: 'sl_host_ingress', egress: 'sl_host_egress' };
/** The tc filter Sluice owns on every workload interface ("S1" and a low priority: runs first). */
export const SLUICE_TC_HANDLE = 0x5c1;
export const SLUICE_TC_PRIORITY = 1;

export const LINKS_DIR = 'links';

/** Where the link of `program` on `cgroupPath` is pinned: stable for a path across restarts. */
export function cgroupLinkPin(pinDir: string, cgroupPath: string, program: string): string {
  const id = createHash('sha256').update(cgroupPath.replace(/\/+$/, '')).digest('hex').slice(0, 16);
  return join(pinDir, LINKS_DIR, `cgroup-${id}-${program}`);
}

export interface CgroupAttachReport {
  /** Pinned links found and switched to the new program (bpf_link_update). */
  updated: string[];
  /** Links created (first start, or a stale pin replaced). */
  created: string[];
}

/** Attaches each program to the cgroup as a pinned link, or updates the pinned link in place. */
export function attachCgroupLinks(
  native: Pick<NativeAddon, 'openPinnedLink'>,
  pinDir: string,
  cgroupPath: string,
  programs: ReadonlyArray<NativeProgram>,
): CgroupAttachReport {
  if (!existsSync(cgroupPath) || !statSync(cgroupPath).isDirectory()) {
    throw new Error(`connect-time programs: cgroup ${cgroupPath} does not exist or is not a directory`);
  }
  mkdirSync(join(pinDir, LINKS_DIR), { recursive: true });
  const report: CgroupAttachReport = { updated: [], created: [] };
  for (const prog of programs) {
    const pin = cgroupLinkPin(pinDir, cgroupPath, prog.info.name);
    if (existsSync(pin)) {
      if (updatePinnedLink(native, pin, prog)) {
        report.updated.push(prog.info.name);
        continue;
      }
      unlinkSync(pin);
    }
    const link = prog.attachCgroup(cgroupPath);
    try {
      link.pin(pin);
    } catch (err) {
      link.detach();
      throw err;
    } finally {
      link.close();
    }
    report.created.push(prog.info.name);
  }
  return report;
}

/**
 * Swaps prog into the link pinned at `pin`. False when that link is unusable — its cgroup was
 * removed (defunct link) or the pin is not such a link — so the caller replaces the pin.
 */
function updatePinnedLink(native: Pick<NativeAddon, 'openPinnedLink'>, pin: string, prog: NativeProgram): boolean {
  try {
    const link = native.openPinnedLink(pin);
    try {
      link.update(prog);
    } finally {
      link.close();
    }
    return true;
  } catch (err) {
    if (hasErrnoCode(err, 'ENOLINK', 'EINVAL', 'EBADF', 'ENOENT')) return false;
    throw err;
  }
}

/** Detaches and unpins the links of the connect-time programs on cgroupPath. Returns how many. */
export function detachCgroupLinks(native: Pick<NativeAddon, 'openPinnedLink'>, pinDir: string, cgroupPath: string): number {
  let n = 0;
  for (const name of CONNECT_PROGRAMS) {
    if (detachPinnedLink(native, cgroupLinkPin(pinDir, cgroupPath, name))) n++;
  }
  return n;
}

function detachPinnedLink(native: Pick<NativeAddon, 'openPinnedLink'>, pin: string): boolean {
  if (!existsSync(pin)) return false;
  try {
    const link = native.openPinnedLink(pin);
    try {
      link.detach();
    } catch (err) {
      // Already defunct (its cgroup is gone): unpinning is all that is left to do.
      if (!hasErrnoCode(err, 'ENOLINK', 'EINVAL')) throw err;
    } finally {
      link.close();
    }
  } finally {
    unlinkSync(pin);
  }
  return true;
}

export interface TcTarget {
  ifindex: number;
  /** Network namespace file the ifindex belongs to (default: this process's). */
  netns?: string;
}

const filterId = (t: TcTarget, direction: TcDirection) => ({
  ifindex: t.ifindex, direction, handle: SLUICE_TC_HANDLE, priority: SLUICE_TC_PRIORITY, ...(t.netns ? { netns: t.netns } : {}),
});

/**
 * Attaches (or swaps, in place) the TC programs on an interface. Egress goes first: alone it only
 * reverse-translates replies of tracked flows, so an interrupted attach never translates half a flow.
 */
export async function attachTcFilters(
  native: Pick<NativeAddon, 'tcHookCreate' | 'tcAttach'>,
  target: TcTarget,
  programs: Readonly<Record<TcDirection, NativeProgram>>,
): Promise<Record<TcDirection, number>> {
  await native.tcHookCreate(target.ifindex, target.netns ? { netns: target.netns } : {});
  const ids = { ingress: 0, egress: 0 };
  for (const direction of ['egress', 'ingress'] as const) {
    const res = await native.tcAttach({ ...filterId(target, direction), progFd: programs[direction].info.fd, replace: true });
    ids[direction] = res.progId;
  }
  return ids;
}

/** Removes Sluice's filters from an interface (other filters stay). Returns how many were there. */
export async function detachTcFilters(native: Pick<NativeAddon, 'tcQuery' | 'tcDetach'>, target: TcTarget): Promise<number> {
  let n = 0;
  for (const direction of ['ingress', 'egress'] as const) {
    const id = filterId(target, direction);
    if ((await native.tcQuery(id)) === null) continue;
    await native.tcDetach(id);
    n++;
  }
  return n;
}

/** ifindexes of every interface in this process's (or `netns`'s) network namespace. */
export function listIfindexes(netns?: string): number[] {
  const argv = netns ? ['nsenter', `--net=${netns}`, 'ip', '-o', 'link', 'show'] : ['ip', '-o', 'link', 'show'];
  const out = execFileSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  return out.split('\n').map((l) => /^(\d+):/.exec(l)?.[1]).filter((s): s is string => s !== undefined).map(Number);
}

export interface CleanupOptions {
  pinDir: string;
  /** Interfaces to remove Sluice's TC filters from: ifindexes, or 'all' of the namespace. */
  tc?: { ifindexes: number[] | 'all'; netns?: string };
  /** Map pins to remove (default: every `sl_*` file in pinDir). */
  mapPins?: 'all' | 'none';
}

export interface CleanupReport {
  linksDetached: number;
  tcFiltersRemoved: number;
  pinsRemoved: number;
  /** What could not be removed, with the reason. */
  problems: string[];
}

/** Removes every link, filter and pin Sluice made: the node goes back to no service dataplane. */
export async function cleanupDatapath(native: Pick<NativeAddon, 'openPinnedLink' | 'tcQuery' | 'tcDetach'>, opts: CleanupOptions): Promise<CleanupReport> {
  const report: CleanupReport = { linksDetached: 0, tcFiltersRemoved: 0, pinsRemoved: 0, problems: [] };
  const linksDir = join(opts.pinDir, LINKS_DIR);
  for (const name of existsSync(linksDir) ? readdirSync(linksDir) : []) {
    try {
      if (detachPinnedLink(native, join(linksDir, name))) report.linksDetached++;
    } catch (err) {
      report.problems.push(`link ${name}: ${(err as Error).message}`);
    }
  }
  if (opts.tc) {
    const { netns } = opts.tc;
    let ifindexes: number[] = [];
    try {
      ifindexes = opts.tc.ifindexes === 'all' ? listIfindexes(netns) : opts.tc.ifindexes;
    } catch (err) {
      report.problems.push(`listing interfaces: ${(err as Error).message}`);
    }
    for (const ifindex of ifindexes) {
      try {
        report.tcFiltersRemoved += await detachTcFilters(native, { ifindex, ...(netns ? { netns } : {}) });
      } catch (err) {
        report.problems.push(`tc filters on ifindex ${ifindex}: ${(err as Error).message}`);
      }
    }
  }
  if ((opts.mapPins ?? 'all') === 'all' && existsSync(opts.pinDir)) {
    for (const name of readdirSync(opts.pinDir)) {
      if (!name.startsWith('sl_')) continue;
      try {
        unlinkSync(join(opts.pinDir, name));
        report.pinsRemoved++;
      } catch (err) {
        report.problems.push(`pin ${name}: ${(err as Error).message}`);
      }
    }
    for (const dir of [linksDir, opts.pinDir]) {
      try {
        if (existsSync(dir)) rmdirSync(dir);
      } catch (err) {
        report.problems.push(`${dir}: ${(err as Error).message} (not ours to remove)`);
      }
    }
  }
  return report;
}
