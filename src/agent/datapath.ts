// The agent's datapath: loads the BPF objects over the pinned maps, attaches the connect-time
// programs to the configured cgroup and the TC programs to workload interfaces, and knows how
// to remove all of it (`sluice-agent cleanup`). Attachments survive the agent: cgroup links are
// pinned (a restarted agent swaps its fresh programs in with bpf_link_update, so the hook never
// has a gap), TC filters use a handle and priority Sluice owns and are replaced in place.
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { loadNative, fromPackageRoot } from '../bpf/native.js';
import type { NativeAddon, NativeLink, NativeObject } from '../bpf/native.js';
import { openBpfObject } from '../bpf/loader.js';
import { allStructCodecs, CTLB } from '../bpf/sluice-structs.js';
import { tablesFromObject } from '../dataplane/native-tables.js';
import type { ServiceTables } from '../dataplane/tables.js';
import type { ProgramAttachment } from '../admin/types.js';
import { cgroup2Mount } from '../testbed/cgroup.js';
import type { AgentConfig } from './config.js';
import { interfaceMatcher } from './interfaces.js';
import type { WorkloadInterface } from './interfaces.js';

/** tc filter handle and priority that mark a filter as Sluice's (never anyone else's). */
export const SLUICE_TC_HANDLE = 0x5c1;
export const SLUICE_TC_PRIORITY = 0x5c1;
export const CONNECT_PROGRAMS = ['sl_connect4', 'sl_sendmsg4', 'sl_recvmsg4', 'sl_getpeername4'] as const;
const LINKS_DIR = 'links';

export interface AgentDatapath {
  readonly tables: ServiceTables;
  readonly libbpfVersion: string;
  readonly udpSocketSweep?: () => void;
  /** Attaches (or swaps in) the connect-time programs; detaches them when the mode is disabled. */
  attachConnectTime(): Promise<void>;
  attachInterface(iface: WorkloadInterface): Promise<void>;
  forgetInterface(iface: WorkloadInterface): void;
  attachments(): ProgramAttachment[];
  /** Closes our handles. Pinned links and TC filters stay: the dataplane keeps working. */
  close(): void;
}

/** Where a cgroup's links are pinned: one directory per cgroup path, so a changed --cgroup is noticed. */
function linkDirFor(pinDir: string, cgroup: string): string {
  return join(pinDir, LINKS_DIR, cgroup.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]/g, '_') || 'root');
}

function objectPath(cfg: AgentConfig, name: string): string {
  return join(cfg.bpfObjectDir || fromPackageRoot('dist', 'bpf'), name);
}

function ctlbProtocols(mode: AgentConfig['connectTimeLb']): number {
  return mode === 'tcp' ? CTLB.TCP : CTLB.TCP | CTLB.UDP;
}

export async function openAgentDatapath(cfg: AgentConfig, logger: Logger, native: NativeAddon = loadNative()): Promise<AgentDatapath> {
  const s = (sec: number) => BigInt(sec) * 1_000_000_000n;
  const tc: NativeObject = await openBpfObject(objectPath(cfg, 'tc.bpf.o'), {
    pinRoot: cfg.pinDir,
    codecs: allStructCodecs,
    logger,
    addon: native,
    rodata: {
      sl_ct_timeout_tcp_syn_sent_ns: s(cfg.ctTimeouts.tcpSynSent),
      sl_ct_timeout_tcp_established_ns: s(cfg.ctTimeouts.tcpEstablished),
      sl_ct_timeout_tcp_fin_ns: s(cfg.ctTimeouts.tcpFin),
      sl_ct_timeout_udp_ns: s(cfg.ctTimeouts.udp),
    },
  });
  const connect: NativeObject = await openBpfObject(objectPath(cfg, 'connect.bpf.o'), {
    pinRoot: cfg.pinDir, logger, addon: native, rodata: { sl_ctlb_protocols: ctlbProtocols(cfg.connectTimeLb) },
  });
  const cgroup = cfg.cgroupPath || cgroup2Mount();
  const cgroupAttachments = new Map<string, ProgramAttachment>();
  const tcAttachments = new Map<string, ProgramAttachment[]>();
  const links: NativeLink[] = [];

  const attachConnectTime = async () => {
    const linksRoot = join(cfg.pinDir, LINKS_DIR);
    const wanted = linkDirFor(cfg.pinDir, cgroup);
    // Links pinned for another cgroup (the flag changed) or while the mode was enabled go first.
    for (const dir of existsSync(linksRoot) ? readdirSync(linksRoot) : []) {
      const path = join(linksRoot, dir);
      if (path === wanted && cfg.connectTimeLb !== 'disabled') continue;
      await detachPinnedLinks(native, path, logger);
    }
    if (cfg.connectTimeLb === 'disabled') {
      logger.info('connect-time load balancing disabled: services are translated by the TC programs only');
      return;
    }
    if (cgroup === cgroup2Mount() && !cfg.cgroupPath) logger.info({ cgroup }, 'attaching connect-time programs to the cgroup2 root (node-wide)');
    for (const name of CONNECT_PROGRAMS) {
      const prog = connect.program(name);
      const pin = join(wanted, name);
      const record: ProgramAttachment = { program: name, hook: 'cgroup', target: cgroup, progId: prog.info.id, attached: false };
      try {
        let link: NativeLink;
        if (existsSync(pin)) {
          link = native.openPinnedLink(pin);
          link.update(prog); // atomic swap: the hook is never empty across a restart
        } else {
          link = prog.attachCgroup(cgroup);
          await mkdir(wanted, { recursive: true });
          link.pin(pin);
        }
        links.push(link);
        record.attached = true;
      } catch (err) {
        record.error = (err as Error).message;
        logger.error({ err, program: name, cgroup }, 'attaching connect-time program failed');
      }
      cgroupAttachments.set(name, record);
    }
  };

  const attachInterface = async ({ name, ifindex }: WorkloadInterface) => {
    const records: ProgramAttachment[] = [];
    await native.tcHookCreate(ifindex);
    for (const [direction, progName] of [['ingress', 'sl_tc_from_pod'], ['egress', 'sl_tc_to_pod']] as const) {
      const prog = tc.program(progName);
      await native.tcAttach({ ifindex, direction, handle: SLUICE_TC_HANDLE, priority: SLUICE_TC_PRIORITY, progFd: prog.info.fd, replace: true });
      records.push({ program: progName, hook: 'tc', target: name, direction, progId: prog.info.id, attached: true });
    }
    tcAttachments.set(name, records);
  };

  return {
    tables: tablesFromObject(tc, native.numPossibleCpus()),
    libbpfVersion: native.libbpfVersion(),
    attachConnectTime,
    attachInterface,
    forgetInterface: ({ name }) => void tcAttachments.delete(name),
    attachments: () => [...cgroupAttachments.values(), ...[...tcAttachments.values()].flat()],
    close() {
      for (const l of links.splice(0)) l.close();
      tc.close();
      connect.close();
    },
  };
}

async function detachPinnedLinks(native: NativeAddon, dir: string, logger: Logger): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    try {
      const link = native.openPinnedLink(path);
      link.detach();
      link.close();
      logger.info({ link: path }, 'detached pinned cgroup link');
    } catch (err) {
      logger.warn({ err, link: path }, 'could not detach pinned link');
    }
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * `sluice-agent cleanup`: detaches the connect-time links pinned under the pin dir, removes
 * Sluice's TC filters from matching interfaces of this network namespace, and removes the pins.
 * Returns what it removed. Safe to run when nothing is there.
 */
export async function cleanupDatapath(cfg: AgentConfig, logger: Logger, native: NativeAddon = loadNative()): Promise<{ links: number; filters: number }> {
  let links = 0;
  const linksRoot = join(cfg.pinDir, LINKS_DIR);
  for (const dir of existsSync(linksRoot) ? await readdir(linksRoot) : []) {
    links += (await readdir(join(linksRoot, dir))).length;
    await detachPinnedLinks(native, join(linksRoot, dir), logger);
  }
  let filters = 0;
  const matches = interfaceMatcher(cfg.interfacePatterns);
  for (const name of await readdir('/sys/class/net')) {
    if (!matches(name)) continue;
    const ifindex = Number((await readFile(`/sys/class/net/${name}/ifindex`, 'utf8').catch(() => '0')).trim());
    if (!ifindex) continue;
    for (const direction of ['ingress', 'egress'] as const) {
      const id = { ifindex, direction, handle: SLUICE_TC_HANDLE, priority: SLUICE_TC_PRIORITY };
      if ((await native.tcQuery(id).catch(() => null)) === null) continue;
      await native.tcDetach(id);
      filters++;
    }
  }
  await rm(cfg.pinDir, { recursive: true, force: true });
  logger.info({ links, filters, pinDir: cfg.pinDir }, 'removed every Sluice attachment and pin');
  return { links, filters };
}
