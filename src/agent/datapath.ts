// The agent's view of the datapath: src/datapath/datapath.ts loads the objects over the pinned
// maps and attaches them; this adapter adds what the agent reports (which program is attached
// where, for status and health) and the interface selection of `sluice-agent cleanup`.
// Attachments survive the agent: cgroup links are pinned and swapped in place on restart
// (bpf_link_update, so the hook never has a gap), TC filters use Sluice's own handles and
// priority, are replaced in place, and are put back at the head of the hook when a foreign
// filter got in front (docs/coexistence.md).
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { loadNative } from '../bpf/native.js';
import { EXTERNAL_MODE } from '../bpf/sluice-structs.js';
import type { NativeAddon, NativeMap } from '../bpf/native.js';
import { Datapath } from '../datapath/datapath.js';
import { cgroupLinkPin, cleanupDatapath, CONNECT_PROGRAMS, describeFilter, HOST_TC_PROGRAMS, sluicePlace, TC_PROGRAMS } from '../datapath/attach.js';
import { checkTcBinary, listTcFilters, tcHookKey } from '../datapath/tc-filters.js';
import type { CleanupReport, TcTarget } from '../datapath/attach.js';
import type { KernelFeatures } from '../datapath/kernel-features.js';
import type { ServiceTables } from '../dataplane/tables.js';
import { MAP_NAMES, MAP_NAMES6 } from '../dataplane/tables.js';
import { maxEntriesOf } from '../dataplane/map-sizes.js';
import type { ProgramAttachment } from '../admin/types.js';
import { cgroup2Mount } from '../testbed/cgroup.js';
import type { ObjectStart } from '../datapath/program-reuse.js';
import type { AgentConfig } from './config.js';
import type { WorkloadInterface } from './interfaces.js';

export interface AgentDatapath {
  readonly tables: ServiceTables;
  /** The IPv6 twins (docs/ipv6.md), when the objects have them. */
  readonly tables6?: ServiceTables;
  readonly libbpfVersion: string;
  /** What the running kernel gives the datapath (docs/kernels.md). */
  readonly kernelFeatures: KernelFeatures;
  /** Per object: the previous start's programs reused, or loaded and why (src/datapath/program-reuse.ts). */
  readonly objectStarts: readonly ObjectStart[];
  readonly udpSocketSweep?: () => void;
  /** Attaches (or swaps in) the connect-time programs; removes them when the mode is disabled. */
  attachConnectTime(): Promise<void>;
  attachInterface(iface: WorkloadInterface): Promise<void>;
  forgetInterface(iface: WorkloadInterface): void;
  /** The external-traffic programs (host.bpf.o) on a host-facing interface; forget as above. */
  attachHostInterface(iface: WorkloadInterface): Promise<void>;
  /** A shared map by name (sl_node_config, sl_src_ranges4/6, sl_ext_counters). */
  map(name: string): NativeMap;
  attachments(): ProgramAttachment[];
  /**
   * Asks the kernel again whether each attachment is in place (the TC filter with Sluice's handle
   * runs our program; the pinned cgroup link is still attached to its cgroup): someone removing
   * a filter or detaching a link shows up in status and health. Returns attachments().
   */
  verify(): Promise<ProgramAttachment[]>;
  /**
   * Re-attaches what verify() found gone after it had been attached: Sluice's TC filters in
   * place, and fresh cgroup links (a detached link's pin is replaced). Returns what it repaired.
   */
  repair(): Promise<ProgramAttachment[]>;
  /**
   * Upgrade hook: once the programs are attached everywhere, finishes a migration of pinned maps
   * to a new layout or size (src/datapath/map-migration.ts); nothing to do otherwise.
   */
  finishUpgrade(): void;
  /** Closes our handles. Pinned links and TC filters stay: the dataplane keeps working. */
  close(): void;
}

/** host.bpf.o's tunables for the external mode (lib/tunnel.h). */
export function externalModeRodata(cfg: Pick<AgentConfig, 'externalMode' | 'tunnelPort' | 'tunnelMtu'>): Record<string, number> {
  const mode = { SNAT: EXTERNAL_MODE.SNAT, Tunnel: EXTERNAL_MODE.TUNNEL, DSR: EXTERNAL_MODE.DSR }[cfg.externalMode];
  return { sl_external_mode: mode, sl_tunnel_port: cfg.tunnelPort, sl_tunnel_mtu: cfg.tunnelMtu };
}

export async function openAgentDatapath(cfg: AgentConfig, logger: Logger, native: NativeAddon = loadNative()): Promise<AgentDatapath> {
  const dp = await Datapath.load({
    pinDir: cfg.pinDir,
    connectTimeLb: cfg.connectTimeLb,
    ctTimeoutsSec: cfg.ctTimeouts,
    // --map-size-*: pinned maps of another size are carried into maps of the new one at load
    // (map-migration.ts), or the start is refused when a service map would lose entries.
    maxEntries: maxEntriesOf(cfg.mapSizes),
    logger,
    native,
    // Connected UDP sockets balanced at connect time are closed when their backend goes.
    udpSocketSweep: cfg.connectTimeLb === 'tcp-udp',
    // External traffic: only when some host-facing interface is to get the programs.
    hostPrograms: cfg.hostInterfacePatterns.length > 0,
    hostRodata: externalModeRodata(cfg),
    ...(cfg.bpfObjectDir ? { objectDir: cfg.bpfObjectDir } : {}),
  });
  const cgroup = cfg.cgroupPath || cgroup2Mount();
  const progIds = dp.programIds();
  const cgroupAttachments: ProgramAttachment[] = [];
  const tcAttachments = new Map<string, ProgramAttachment[]>();
  const ifindexes = new Map<string, number>();
  const attachments = () => [...cgroupAttachments, ...[...tcAttachments.values()].flat()];

  const attachTc = async (
    { name, ifindex }: WorkloadInterface,
    programs: Readonly<Record<'ingress' | 'egress', string>>,
    attach: (target: TcTarget) => Promise<Record<'ingress' | 'egress', number>>,
  ): Promise<void> => {
    ifindexes.set(name, ifindex);
    try {
      const ids = await attach({ ifindex, ifname: name });
      tcAttachments.set(name, (['ingress', 'egress'] as const).map((direction) => ({
        program: programs[direction], hook: 'tc', target: name, direction, progId: ids[direction], attached: true,
      })));
    } catch (err) {
      // Recorded, so status and health show it; the interface watcher retries.
      tcAttachments.set(name, (['ingress', 'egress'] as const).map((direction) => ({
        program: programs[direction], hook: 'tc', target: name, direction, progId: 0, attached: false, error: (err as Error).message,
      })));
      throw err;
    }
  };

  const self: AgentDatapath = {
    tables: dp.tables,
    tables6: dp.tables6,
    libbpfVersion: native.libbpfVersion(),
    kernelFeatures: dp.kernelFeatures,
    objectStarts: dp.programStarts,
    ...(dp.udpSocketSweep ? { udpSocketSweep: dp.udpSocketSweep } : {}),
    async attachConnectTime() {
      cgroupAttachments.length = 0;
      if (cfg.connectTimeLb === 'disabled') {
        const { detached } = dp.attachConnectTime(cgroup);
        logger.info({ cgroup, detached }, 'connect-time load balancing disabled: services are translated by the TC programs only');
        return;
      }
      if (!dp.connectTimeAvailable) {
        // The kernel rejected connect.bpf.o (logged with the verifier's reason at load): links a
        // previous agent left would run programs over maps we may change, so they go too.
        const { detached } = dp.attachConnectTime(cgroup);
        logger.warn({ cgroup, detached }, 'connect-time load balancing unavailable on this kernel: services are translated by the TC programs only');
        return;
      }
      if (!cfg.cgroupPath) logger.info({ cgroup }, 'attaching connect-time programs to the cgroup2 root (node-wide)');
      try {
        const report = dp.attachConnectTime(cgroup);
        logger.info({ cgroup, updated: report.updated, created: report.created }, 'connect-time programs attached');
        for (const program of CONNECT_PROGRAMS) {
          cgroupAttachments.push({ program, hook: 'cgroup', target: cgroup, progId: progIds[program] ?? 0, attached: true });
        }
      } catch (err) {
        for (const program of CONNECT_PROGRAMS) {
          cgroupAttachments.push({ program, hook: 'cgroup', target: cgroup, progId: 0, attached: false, error: (err as Error).message });
        }
        throw err;
      }
    },
    attachInterface: (iface) => attachTc(iface, TC_PROGRAMS, (target) => dp.attachTc(target)),
    attachHostInterface: (iface) => attachTc(iface, HOST_TC_PROGRAMS, (target) => dp.attachHostTc(target)),
    map: (name) => dp.map(name),
    forgetInterface: ({ name }) => {
      tcAttachments.delete(name);
      ifindexes.delete(name);
    },
    attachments,
    async verify() {
      for (const a of cgroupAttachments) {
        if (a.progId === 0) continue; // never attached: its error stands
        const problem = cgroupLinkProblem(native, cfg.pinDir, cgroup, a.program, a.progId);
        a.attached = problem === undefined;
        if (problem) a.error = problem;
        else delete a.error;
      }
      // One listing of every hook: which filter runs first tells whether a foreign program
      // that ends the chain got in front of Sluice (repair() then re-inserts Sluice at the head).
      const checked = [...tcAttachments].flatMap(([name, list]) => list.filter((a) => a.progId !== 0 && a.direction && ifindexes.has(name)));
      const hooks = checked.map((a) => ({ ifname: a.target, direction: a.direction as 'ingress' | 'egress' }));
      const listed = await listTcFilters(hooks).catch((err: Error) => err);
      for (const a of checked) {
        const direction = a.direction as 'ingress' | 'egress';
        const filters = listed instanceof Error ? undefined : listed.get(tcHookKey({ ifname: a.target, direction }));
        if (!filters) {
          a.attached = false;
          a.error = listed instanceof Error ? `the tc filters cannot be read (${listed.message})` : 'the interface is gone';
          continue;
        }
        const { ours, ahead } = sluicePlace(filters, direction);
        const front = ours[0];
        a.attached = front !== undefined && front.progId === a.progId && ahead.length === 0;
        if (a.attached) delete a.error;
        else if (!front) a.error = 'no Sluice filter on the hook any more';
        else if (front.progId !== a.progId) a.error = `the filter runs program ${front.progId}, not ${a.progId}`;
        else a.error = `a foreign filter runs before Sluice (${ahead.map(describeFilter).join('; ')})`;
      }
      return attachments();
    },
    async repair() {
      const gone = attachments().filter((a) => !a.attached && a.progId !== 0);
      const brokenLinks = gone.filter((a) => a.hook === 'cgroup');
      if (brokenLinks.length > 0) {
        // Only the broken links' pins go (an intact link unpinned would detach, a gap): the
        // attach then updates the intact links in place and creates the missing ones.
        for (const a of brokenLinks) rmSync(cgroupLinkPin(cfg.pinDir, cgroup, a.program), { force: true });
        await self.attachConnectTime();
      }
      const hostPrograms = new Set(Object.values(HOST_TC_PROGRAMS));
      const targets = new Map(gone.filter((x) => x.hook === 'tc').map((x) => [x.target, hostPrograms.has(x.program)]));
      for (const [name, host] of targets) {
        const ifindex = ifindexes.get(name);
        if (ifindex === undefined) continue;
        if (host) await self.attachHostInterface({ name, ifindex });
        else await self.attachInterface({ name, ifindex });
      }
      return gone;
    },
    finishUpgrade: () => {
      const lastPass = dp.finishUpgrade();
      if (dp.upgradeReports.length > 0) logger.info({ carried: dp.upgradeReports, lastPass }, 'upgrade: programs switched to the new maps, old map pins removed');
    },
    close: () => dp.close(),
  };
  return self;
}

/** Why the pinned link of `program` on `cgroup` no longer runs `progId`, or undefined when it does. */
function cgroupLinkProblem(native: NativeAddon, pinDir: string, cgroup: string, program: string, progId: number): string | undefined {
  let link;
  try {
    link = native.openPinnedLink(cgroupLinkPin(pinDir, cgroup, program));
  } catch (err) {
    return `its pinned link is gone (${(err as Error).message})`;
  }
  try {
    const info = link.info();
    if (info.cgroupId === 0) return 'its link was detached';
    if (info.progId !== progId) return `its link runs program ${info.progId}, not ${progId}`;
    return undefined;
  } catch (err) {
    return `its link cannot be read (${(err as Error).message})`;
  } finally {
    link.close();
  }
}

/**
 * `sluice-agent cleanup`, the uninstall step: nothing of Sluice stays attached, and flows move to
 * whatever serves after it (kube-proxy restored, or beside Sluice on AKS) without breaking:
 * 1. it empties the frontend and VIP maps: new connections are no longer translated (not at
 *    connect(), not on the veths) and reach kube-proxy's rules; flows Sluice already tracks
 *    keep being translated through their conntrack entries;
 * 2. it waits --cleanup-drain (default 5 s) for those flows to finish;
 * 3. it detaches the connect-time links pinned under the pin dir, removes Sluice's TC filters
 *    from every interface of this network namespace (a filter is Sluice's by handle, priority
 *    and program name, so foreign filters stay, and an interface pattern changed since the
 *    install cannot hide one), and removes the map pins.
 * Safe to run when nothing is there.
 */
export async function cleanupAgentDatapath(cfg: AgentConfig, logger: Logger, native: NativeAddon = loadNative()): Promise<CleanupReport> {
  // Without tc, Sluice's filters cannot be found: refuse before anything is emptied or detached
  // rather than leave them attached behind a cleanup that looked successful.
  await checkTcBinary();
  const emptied = stopNewTranslations(native, cfg.pinDir, logger);
  if (emptied > 0 && cfg.cleanupDrainMs > 0) {
    logger.info({ frontends: emptied, drainMs: cfg.cleanupDrainMs }, 'new connections now bypass Sluice; letting tracked flows finish');
    await new Promise((r) => setTimeout(r, cfg.cleanupDrainMs));
  }
  const report = await cleanupDatapath(native, { pinDir: cfg.pinDir, tc: { ifindexes: 'all' } });
  if (report.problems.length > 0) logger.warn({ problems: report.problems }, 'cleanup left something behind');
  logger.info({ ...report, pinDir: cfg.pinDir }, 'removed Sluice attachments and pins');
  return report;
}

/**
 * Deletes every entry of the pinned VIP map, then of the frontend map (in that order: a VIP
 * without its frontends would refuse their ports). Returns how many frontends there were.
 */
function stopNewTranslations(native: NativeAddon, pinDir: string, logger: Logger): number {
  let frontends = 0;
  const frontendMaps = [MAP_NAMES.frontends, MAP_NAMES6.frontends];
  for (const name of [MAP_NAMES.vips, MAP_NAMES6.vips, ...frontendMaps]) {
    const pin = join(pinDir, name);
    if (!existsSync(pin)) continue;
    try {
      const map = native.openPinnedMap(pin);
      try {
        for (const key of map.keys()) {
          if (map.delete(key) && frontendMaps.includes(name)) frontends++;
        }
      } finally {
        map.close();
      }
    } catch (err) {
      logger.warn({ map: name, err: (err as Error).message }, 'could not empty the map before detaching: new flows may break at the switch');
    }
  }
  return frontends;
}
