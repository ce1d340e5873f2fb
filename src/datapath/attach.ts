// Attaching the datapath programs so that an agent restart never leaves a gap:
// - cgroup (connect-time) programs are bpf_links pinned under <pinDir>/links/. A restarted agent
//   finds the pinned link and swaps in its freshly loaded program with bpf_link_update: the hook
//   stays attached throughout.
// - TC programs are direct-action filters at priority 1 under one of two handles Sluice owns,
//   and always the first filter of the hook: other programs share these hooks (a network policy
//   agent at priority 1 that ends the chain), and within a priority the newest filter runs
//   first. Re-attaching swaps the program in place when Sluice is in front; when a foreign
//   filter got in front, Sluice inserts itself again at the head under its other handle, then
//   removes its old filter (a Sluice filter runs throughout). See docs/coexistence.md.
// A filter is Sluice's only if its handle, priority AND program name are: nothing else is ever
// replaced or deleted. Cleanup removes exactly those links, filters and pins (maps, and the
// programs kept for the next start under <pinDir>/progs, program-reuse.ts), nothing else.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { hasErrnoCode } from '../bpf/errors.js';
import type { NativeAddon, NativeProgram, TcDirection } from '../bpf/native.js';
import { removeProgramPins } from './program-reuse.js';
import { hookFilters, interfaceNames, listTcFilters, tcHookKey, type TcFilterEntry } from './tc-filters.js';

/** The connect-time programs of connect.bpf.o (bpf/connect.bpf.c). */
export const CONNECT_PROGRAMS = [
  'sl_connect4', 'sl_sendmsg4', 'sl_recvmsg4', 'sl_getpeername4', 'sl_connect6', 'sl_sendmsg6', 'sl_recvmsg6', 'sl_getpeername6',
] as const;
/** The TC programs of tc.bpf.o by hook: what the pod sends (ingress of its host veth), what it receives. */
export const TC_PROGRAMS: Readonly<Record<TcDirection, string>> = { ingress: 'sl_tc_from_pod', egress: 'sl_tc_to_pod' };
/** The TC programs of host.bpf.o for the node's host-facing interfaces (external traffic). */
export const HOST_TC_PROGRAMS: Readonly<Record<TcDirection, string>> = { ingress: 'sl_host_ingress', egress: 'sl_host_egress' };
/** The tc filter handles Sluice owns on every workload interface ("S1", "S2"): one in use, the other to re-insert at the head. */
export const SLUICE_TC_HANDLES = [0x5c1, 0x5c2] as const;
/** The first handle: where a first attach goes. */
export const SLUICE_TC_HANDLE = SLUICE_TC_HANDLES[0];
/** The lowest priority tc allows: runs before every higher number. */
export const SLUICE_TC_PRIORITY = 1;

/** Whether `f` on the `direction` hook is Sluice's: one of its handles at its priority running its program. */
export function isSluiceFilter(f: TcFilterEntry, direction: TcDirection): boolean {
  return f.priority === SLUICE_TC_PRIORITY && (SLUICE_TC_HANDLES as readonly number[]).includes(f.handle) &&
    f.kind === 'bpf' && (f.progName === TC_PROGRAMS[direction] || f.progName === HOST_TC_PROGRAMS[direction]);
}

/** How Sluice stands on one hook: its filters, and the foreign filters that run before the first of them. */
export function sluicePlace(filters: readonly TcFilterEntry[], direction: TcDirection): { ours: TcFilterEntry[]; ahead: TcFilterEntry[] } {
  const ours = filters.filter((f) => isSluiceFilter(f, direction));
  const first = ours[0] ? filters.indexOf(ours[0]) : filters.length;
  return { ours, ahead: filters.slice(0, first) };
}

export const describeFilter = (f: TcFilterEntry) =>
  `prio ${f.priority} handle 0x${f.handle.toString(16)} ${f.kind}${f.progName ? ` program "${f.progName}" (id ${f.progId})` : ''}`;

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
  /** Its name, when the caller knows it (otherwise looked up). */
  ifname?: string;
  /** Network namespace file the ifindex belongs to (default: this process's). */
  netns?: string;
}

const filterAt = (t: TcTarget, direction: TcDirection, handle: number) => ({
  ifindex: t.ifindex, direction, handle, priority: SLUICE_TC_PRIORITY, ...(t.netns ? { netns: t.netns } : {}),
});

async function ifnameOf(target: TcTarget): Promise<string> {
  if (target.ifname) return target.ifname;
  const name = (await interfaceNames(target.netns)).get(target.ifindex);
  if (!name) throw new Error(`no interface with ifindex ${target.ifindex}${target.netns ? ` in ${target.netns}` : ''}`);
  return name;
}

/**
 * Attaches (or swaps in) the TC programs on an interface, first on each hook. Egress goes first:
 * alone it only reverse-translates replies of tracked flows, so an interrupted attach never
 * translates half a flow. Sluice's filter already in front is replaced in place; otherwise a new
 * one goes in at the head under the free Sluice handle and the old one is removed after it.
 */
export async function attachTcFilters(
  native: Pick<NativeAddon, 'tcHookCreate' | 'tcAttach' | 'tcDetach'>,
  target: TcTarget,
  programs: Readonly<Record<TcDirection, NativeProgram>>,
  /** Called with the ids of the Sluice programs about to be replaced, right before the switch. */
  beforeSwitch?: (previous: Partial<Record<TcDirection, number>>) => void,
): Promise<Record<TcDirection, number>> {
  await native.tcHookCreate(target.ifindex, target.netns ? { netns: target.netns } : {});
  const ifname = await ifnameOf(target);
  const ids = { ingress: 0, egress: 0 };
  // Both hooks are read first, then switched back to back: while one hook runs the new program
  // and the other the old one, a flow opened by one is not found by the other (an upgrade over
  // maps of a new layout, docs/upgrades.md), so that window is kept to two netlink calls.
  const plans = [];
  for (const direction of ['egress', 'ingress'] as const) {
    const filters = await hookFilters({ ifname, direction }, target.netns);
    const { ours, ahead } = sluicePlace(filters, direction);
    const front = ours[0];
    if (front && ahead.length === 0) {
      plans.push({ direction, handle: front.handle, replace: true, remove: ours.slice(1), current: front });
      continue;
    }
    const taken = new Set(filters.filter((f) => f.priority === SLUICE_TC_PRIORITY).map((f) => f.handle));
    const free = SLUICE_TC_HANDLES.find((h) => !taken.has(h));
    if (free === undefined) {
      const squatters = filters.filter((f) => f.priority === SLUICE_TC_PRIORITY && taken.has(f.handle) && !isSluiceFilter(f, direction));
      throw new Error(`${ifname} ${direction}: both Sluice tc handles are taken (${filters.filter((f) => (SLUICE_TC_HANDLES as readonly number[]).includes(f.handle)).map(describeFilter).join('; ')})` +
        (squatters.length ? '; a foreign filter uses a Sluice handle and is left alone' : ''));
    }
    // A new filter at an existing priority goes to the head of its list: in front of `ahead`.
    plans.push({ direction, handle: free, replace: false, remove: ours, current: ours[0] });
  }
  const previous: Partial<Record<TcDirection, number>> = {};
  for (const { direction, current } of plans) if (current?.progId) previous[direction] = current.progId;
  beforeSwitch?.(previous);
  for (const { direction, handle, replace } of plans) {
    ids[direction] = (await native.tcAttach({ ...filterAt(target, direction, handle), progFd: programs[direction].info.fd, replace })).progId;
  }
  for (const { direction, remove } of plans) {
    for (const old of remove) await native.tcDetach(filterAt(target, direction, old.handle));
  }
  return ids;
}

/** Removes Sluice's filters from an interface; foreign filters stay, whatever their handle. Returns how many. */
export async function detachTcFilters(native: Pick<NativeAddon, 'tcDetach'>, target: TcTarget): Promise<number> {
  let ifname: string;
  try {
    ifname = await ifnameOf(target);
  } catch {
    return 0; // the interface is gone, and its filters with it
  }
  let n = 0;
  for (const direction of ['ingress', 'egress'] as const) {
    const { ours } = sluicePlace(await hookFilters({ ifname, direction }, target.netns).catch(() => []), direction);
    for (const f of ours) {
      await native.tcDetach(filterAt(target, direction, f.handle));
      n++;
    }
  }
  return n;
}

export interface CleanupOptions {
  pinDir: string;
  /** Interfaces to remove Sluice's TC filters from: ifindexes, or 'all' of the namespace (foreign filters always stay). */
  tc?: { ifindexes: number[] | 'all'; netns?: string };
  /** Map pins to remove (default: every `sl_*` file in pinDir). */
  mapPins?: 'all' | 'none';
}

export interface CleanupReport {
  linksDetached: number;
  tcFiltersRemoved: number;
  pinsRemoved: number;
  /** Program pins of every generation (program-reuse.ts): their programs go with what was attached. */
  programPinsRemoved: number;
  /** What could not be removed, with the reason. */
  problems: string[];
}

/** Removes every link, filter and pin Sluice made: the node goes back to no service dataplane. */
export async function cleanupDatapath(native: Pick<NativeAddon, 'openPinnedLink' | 'tcDetach'>, opts: CleanupOptions): Promise<CleanupReport> {
  const report: CleanupReport = { linksDetached: 0, tcFiltersRemoved: 0, pinsRemoved: 0, programPinsRemoved: 0, problems: [] };
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
    let names = new Map<number, string>();
    try {
      names = await interfaceNames(netns);
    } catch (err) {
      report.problems.push(`listing interfaces: ${(err as Error).message}`);
    }
    const ifindexes = opts.tc.ifindexes === 'all' ? [...names.keys()] : opts.tc.ifindexes.filter((i) => names.has(i));
    const hooks = ifindexes.flatMap((ifindex) => (['ingress', 'egress'] as const).map((direction) => ({ ifindex, ifname: names.get(ifindex) as string, direction })));
    let listed = new Map<string, TcFilterEntry[]>();
    try {
      listed = await listTcFilters(hooks, netns);
    } catch (err) {
      report.problems.push(`listing tc filters: ${(err as Error).message}`);
    }
    for (const h of hooks) {
      for (const f of sluicePlace(listed.get(tcHookKey(h)) ?? [], h.direction).ours) {
        try {
          await native.tcDetach(filterAt({ ifindex: h.ifindex, ...(netns ? { netns } : {}) }, h.direction, f.handle));
          report.tcFiltersRemoved++;
        } catch (err) {
          report.problems.push(`tc filter ${describeFilter(f)} on ${h.ifname} ${h.direction}: ${(err as Error).message}`);
        }
      }
    }
  }
  report.programPinsRemoved = removeProgramPins(opts.pinDir, report.problems);
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
