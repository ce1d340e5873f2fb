// The agent's view of the datapath: src/datapath/datapath.ts loads the objects over the pinned
// maps and attaches them; this adapter adds what the agent reports (which program is attached
// where, for status and health) and the interface selection of `sluice-agent cleanup`.
// Attachments survive the agent: cgroup links are pinned and swapped in place on restart
// (bpf_link_update, so the hook never has a gap), TC filters use Sluice's own handle and
// priority and are replaced in place.
import { rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { loadNative } from '../bpf/native.js';
import type { NativeAddon, NativeMap } from '../bpf/native.js';
import { Datapath } from '../datapath/datapath.js';
import { cgroupLinkPin, cleanupDatapath, CONNECT_PROGRAMS, HOST_TC_PROGRAMS, SLUICE_TC_HANDLE, SLUICE_TC_PRIORITY, TC_PROGRAMS } from '../datapath/attach.js';
import type { CleanupReport } from '../datapath/attach.js';
import type { ServiceTables } from '../dataplane/tables.js';
import type { ProgramAttachment } from '../admin/types.js';
import { cgroup2Mount } from '../testbed/cgroup.js';
import type { AgentConfig } from './config.js';
import { interfaceMatcher } from './interfaces.js';
import type { WorkloadInterface } from './interfaces.js';

export interface AgentDatapath {
  readonly tables: ServiceTables;
  readonly libbpfVersion: string;
  readonly udpSocketSweep?: () => void;
  /** Attaches (or swaps in) the connect-time programs; removes them when the mode is disabled. */
  attachConnectTime(): Promise<void>;
  attachInterface(iface: WorkloadInterface): Promise<void>;
  forgetInterface(iface: WorkloadInterface): void;
  /** The external-traffic programs (host.bpf.o) on a host-facing interface; forget as above. */
  attachHostInterface(iface: WorkloadInterface): Promise<void>;
  /** A shared map by name (sl_node_config, sl_src_ranges4, sl_ext_counters). */
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
  /** Closes our handles. Pinned links and TC filters stay: the dataplane keeps working. */
  close(): void;
}

export async function openAgentDatapath(cfg: AgentConfig, logger: Logger, native: NativeAddon = loadNative()): Promise<AgentDatapath> {
  const dp = await Datapath.load({
    pinDir: cfg.pinDir,
    connectTimeLb: cfg.connectTimeLb,
    ctTimeoutsSec: cfg.ctTimeouts,
    logger,
    native,
    // Connected UDP sockets balanced at connect time are closed when their backend goes.
    udpSocketSweep: cfg.connectTimeLb === 'tcp-udp',
    // External traffic: only when some host-facing interface is to get the programs.
    hostPrograms: cfg.hostInterfacePatterns.length > 0,
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
    attach: (target: { ifindex: number }) => Promise<Record<'ingress' | 'egress', number>>,
  ): Promise<void> => {
    ifindexes.set(name, ifindex);
    try {
      const ids = await attach({ ifindex });
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
    libbpfVersion: native.libbpfVersion(),
    ...(dp.udpSocketSweep ? { udpSocketSweep: dp.udpSocketSweep } : {}),
    async attachConnectTime() {
      cgroupAttachments.length = 0;
      if (cfg.connectTimeLb === 'disabled') {
        const { detached } = dp.attachConnectTime(cgroup);
        logger.info({ cgroup, detached }, 'connect-time load balancing disabled: services are translated by the TC programs only');
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
      for (const [name, list] of tcAttachments) {
        const ifindex = ifindexes.get(name);
        for (const a of list) {
          if (a.progId === 0 || ifindex === undefined || !a.direction) continue;
          const id = await native.tcQuery({ ifindex, direction: a.direction, handle: SLUICE_TC_HANDLE, priority: SLUICE_TC_PRIORITY }).catch(() => null);
          a.attached = id === a.progId;
          if (a.attached) delete a.error;
          else a.error = id === null ? 'no Sluice filter on the hook any more' : `the filter runs program ${id}, not ${a.progId}`;
        }
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
 * `sluice-agent cleanup`: detaches the connect-time links pinned under the pin dir, removes
 * Sluice's TC filters from the interfaces matching --interfaces in this network namespace (and
 * only those), and removes the map pins. Safe to run when nothing is there.
 */
export async function cleanupAgentDatapath(cfg: AgentConfig, logger: Logger, native: NativeAddon = loadNative()): Promise<CleanupReport> {
  const matches = interfaceMatcher([...cfg.interfacePatterns, ...cfg.hostInterfacePatterns]);
  const ifindexes: number[] = [];
  for (const name of await readdir('/sys/class/net')) {
    if (!matches(name)) continue;
    const ifindex = Number((await readFile(`/sys/class/net/${name}/ifindex`, 'utf8').catch(() => '0')).trim());
    if (ifindex) ifindexes.push(ifindex);
  }
  const report = await cleanupDatapath(native, { pinDir: cfg.pinDir, tc: { ifindexes } });
  if (report.problems.length > 0) logger.warn({ problems: report.problems }, 'cleanup left something behind');
  logger.info({ ...report, pinDir: cfg.pinDir }, 'removed Sluice attachments and pins');
  return report;
}
