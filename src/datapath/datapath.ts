// The datapath loader: loads dist/bpf/tc.bpf.o and dist/bpf/connect.bpf.o with their maps pinned by
// name in one directory (both objects share them, and a restarted agent finds its state there),
// sets the tunables before load (conntrack timeouts, connect-time protocols, map sizes), checks
// every struct codec against each object's BTF, and attaches the programs (see attach.ts).
// Optionally loads the UDP socket sweep (sockdestroy.bpf.o, see socket-sweep.ts) over the same maps.
// Only tc.bpf.o must load: connect.bpf.o and sockdestroy.bpf.o are optional features, turned off
// (and reported) when the running kernel rejects them (kernel-features.ts, docs/kernels.md).
import { mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { loadNative, fromPackageRoot } from '../bpf/native.js';
import type { NativeAddon, NativeMap, NativeObject } from '../bpf/native.js';
import { openBpfObject } from '../bpf/loader.js';
import { allConstantMirrors, CTLB } from '../bpf/sluice-structs.js';
import type { CgroupAttachReport, TcTarget } from './attach.js';
import { attachCgroupLinks, attachTcFilters, CONNECT_PROGRAMS, detachCgroupLinks, detachTcFilters, HOST_TC_PROGRAMS, TC_PROGRAMS } from './attach.js';
import { tablesFromObject } from '../dataplane/native-tables.js';
import type { ServiceTables } from '../dataplane/tables.js';
import { checkTableSpecs, SIZABLE_MAP_NAMES } from '../dataplane/table-specs.js';
import type { NamespaceSources } from './socket-sweep.js';
import { SOCKDESTROY_OBJECT, UdpSocketSweeper } from './socket-sweep.js';
// Upgrade hooks (map layout/size changes): see upgrade.ts and map-migration.ts.
import { DatapathUpgrade } from './upgrade.js';
import type { MapCarryReport } from './map-migration.js';
import type { ObjectStart } from './program-reuse.js';
import { ProgramGenerations } from './program-reuse.js';
import type { KernelFeatures } from './kernel-features.js';
import { kernelFeatures, loadOptional, logKernelFeatures, probeKernel } from './kernel-features.js';

export type ConnectTimeMode = 'tcp' | 'tcp-udp' | 'disabled';

/** Conntrack timeouts in seconds (defaults: Calico's, as compiled into bpf/lib/conntrack.h). */
export interface CtTimeoutsSec {
  tcpSynSent?: number;
  tcpEstablished?: number;
  tcpFin?: number;
  tcpRst?: number;
  udp?: number;
}

const CT_TUNABLES: Record<keyof CtTimeoutsSec, string> = {
  tcpSynSent: 'sl_ct_timeout_tcp_syn_sent_ns',
  tcpEstablished: 'sl_ct_timeout_tcp_established_ns',
  tcpFin: 'sl_ct_timeout_tcp_fin_ns',
  tcpRst: 'sl_ct_timeout_tcp_rst_ns',
  udp: 'sl_ct_timeout_udp_ns',
};

/** Maps whose size may be configured, and why: TableSpec.sizable (src/dataplane/table-specs.ts). */
export const SIZABLE_MAPS = SIZABLE_MAP_NAMES;
export type SizableMap = string;

export interface DatapathOptions {
  /** bpffs directory for the pinned maps and links (e.g. /sys/fs/bpf/sluice). */
  pinDir: string;
  connectTimeLb: ConnectTimeMode;
  /** Directory of tc.bpf.o and connect.bpf.o (default: dist/bpf of the package). */
  objectDir?: string;
  ctTimeoutsSec?: CtTimeoutsSec;
  /** Map capacities; sl_svc_counters and sl_svc_meta (indexed by svc_id) must be equal. */
  maxEntries?: Readonly<Record<SizableMap, number>>;
  /**
   * Load sockdestroy.bpf.o so `udpSocketSweep` closes connected UDP sockets balanced to removed
   * backends, in every network namespace of the node (or where the options say). Optional: a
   * kernel without bpf_sock_destroy (< 6.5) gets a warning and no sweep.
   */
  udpSocketSweep?: boolean | (NamespaceSources & { namespaces?: () => Iterable<string> });
  /** Load host.bpf.o (external traffic on the node's host-facing interfaces) over the same maps. */
  hostPrograms?: boolean;
  /** host.bpf.o's own tunables (lib/tunnel.h: sl_external_mode, sl_tunnel_port, sl_tunnel_mtu). */
  hostRodata?: Readonly<Record<string, number>>;
  native?: NativeAddon;
  logger?: Logger;
}

export class DatapathConfigError extends Error {
  constructor(field: string, value: unknown, reason: string) {
    super(`datapath: ${field} ${JSON.stringify(value)} ${reason}`);
    this.name = 'DatapathConfigError';
  }
}

const BPF_FS_MAGIC = 0xcafe4a11;
const U32_MAX = 0xffffffff;

function validate(opts: DatapathOptions): void {
  if (typeof opts.pinDir !== 'string' || !opts.pinDir.startsWith('/')) throw new DatapathConfigError('pinDir', opts.pinDir, 'is not an absolute path');
  if (!['tcp', 'tcp-udp', 'disabled'].includes(opts.connectTimeLb)) {
    throw new DatapathConfigError('connectTimeLb', opts.connectTimeLb, "is not 'tcp', 'tcp-udp' or 'disabled'");
  }
  for (const [name, sec] of Object.entries(opts.ctTimeoutsSec ?? {})) {
    if (!(name in CT_TUNABLES)) throw new DatapathConfigError('ctTimeoutsSec', name, `is not one of ${Object.keys(CT_TUNABLES).join(', ')}`);
    if (typeof sec !== 'number' || !Number.isFinite(sec) || sec <= 0 || sec > 10 * 365 * 86400) {
      throw new DatapathConfigError(`ctTimeoutsSec.${name}`, sec, 'is not a positive number of seconds (at most 10 years)');
    }
  }
  for (const [name, n] of Object.entries(opts.maxEntries ?? {})) {
    if (!(SIZABLE_MAPS as readonly string[]).includes(name)) throw new DatapathConfigError('maxEntries', name, `is not one of ${SIZABLE_MAPS.join(', ')}`);
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > U32_MAX) throw new DatapathConfigError(`maxEntries.${name}`, n, 'is not a whole number from 1 to 2^32-1');
  }
  const ids = [opts.maxEntries?.sl_svc_counters, opts.maxEntries?.sl_svc_meta];
  if (ids[0] !== ids[1]) throw new DatapathConfigError('maxEntries.sl_svc_counters', ids[0], `differs from maxEntries.sl_svc_meta (${ids[1]}): both are indexed by svc_id`);
}

/** The pin directory on bpffs (created when missing). */
function preparePinDir(pinDir: string): void {
  mkdirSync(pinDir, { recursive: true });
  const type = statfsSync(pinDir).type;
  if (type !== BPF_FS_MAGIC) {
    throw new DatapathConfigError('pinDir', pinDir, 'is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)');
  }
}

export class Datapath {
  /** The service maps, through the tc object's handles. */
  readonly tables: ServiceTables;
  /** Their IPv6 twins (sl_frontends6, ...; docs/ipv6.md), sharing names and counters. */
  readonly tables6: ServiceTables;

  /**
   * For ServiceTableWriter's `udpSocketSweep`: one sweep over every network namespace. Absent
   * when not asked for or when the kernel cannot (see `udpSocketSweeper.stats()`).
   */
  readonly udpSocketSweep?: () => void;

  private constructor(
    private readonly native: NativeAddon,
    readonly pinDir: string,
    readonly mode: ConnectTimeMode,
    private readonly tc: NativeObject,
    private readonly connect: NativeObject | null,
    /** The UDP socket sweep, when asked for (check `available`). */
    readonly udpSocketSweeper: UdpSocketSweeper | null,
    private readonly upgrade: DatapathUpgrade,
    /** Which features this kernel gives (docs/kernels.md): tc-datapath is always on here. */
    readonly kernelFeatures: KernelFeatures,
    private readonly host: NativeObject | null = null,
    /** Per object: whether the previous start's programs were reused, and why not (program-reuse.ts). */
    readonly programStarts: readonly ObjectStart[] = [],
  ) {
    this.tables = tablesFromObject(tc, native.numPossibleCpus(), upgrade.layouts);
    this.tables6 = tablesFromObject(tc, native.numPossibleCpus(), upgrade.layouts, 'IPv6');
    if (udpSocketSweeper?.available) this.udpSocketSweep = () => void udpSocketSweeper.sweep();
  }

  static async load(opts: DatapathOptions): Promise<Datapath> {
    validate(opts);
    const native = opts.native ?? loadNative();
    const dir = opts.objectDir ?? fromPackageRoot('dist', 'bpf');
    preparePinDir(opts.pinDir);
    const maxEntries: Record<string, number> = { ...opts.maxEntries };
    const upgrade = new DatapathUpgrade({ native, pinDir: opts.pinDir, ...(opts.logger ? { logger: opts.logger } : {}) });
    // The previous start's programs, when this start would load the very same (program-reuse.ts);
    // never while maps are being carried to a new layout.
    const generations = new ProgramGenerations({
      native, pinDir: opts.pinDir, ...(opts.logger ? { logger: opts.logger } : {}),
      refuse: () => (upgrade.pending ? 'an upgrade over migrated maps is under way' : null),
    });
    const common = {
      pinRoot: opts.pinDir, maxEntries, beforeLoad: upgrade.beforeLoad, reuse: generations.reuse, afterLoad: generations.afterLoad,
      constants: allConstantMirrors, addon: native, ...(opts.logger ? { logger: opts.logger } : {}),
    };

    const rodata: Record<string, bigint> = {};
    for (const [name, sec] of Object.entries(opts.ctTimeoutsSec ?? {})) {
      rodata[CT_TUNABLES[name as keyof CtTimeoutsSec]] = BigInt(Math.round(sec * 1e9));
    }
    const probes = probeKernel(native);
    let tc: NativeObject;
    let host: NativeObject | null = null;
    try {
      tc = await openBpfObject(join(dir, 'tc.bpf.o'), { ...common, rodata });
    } catch (err) {
      upgrade.restore();
      generations.abandon();
      throw err;
    }
    try {
      upgrade.afterLoad(tc);
      requirePrograms(tc, Object.values(TC_PROGRAMS));
      checkTableSpecs(tc, maxEntries);
      // host.bpf.o (external traffic) is optional too: without it, pods and the node still reach
      // every Service; only traffic from outside the node goes untranslated.
      const hostLoad = !opts.hostPrograms
        ? { value: null, outcome: { loaded: false, skipped: 'disabled' } as const }
        : await loadOptional('external-traffic', async () => {
          const obj = await openBpfObject(join(dir, 'host.bpf.o'), { ...common, rodata: { ...rodata, ...opts.hostRodata } });
          try {
            // Its own pinned maps (sl_host6_progs) set aside by beforeLoad get their carry step too.
            upgrade.afterLoad(obj);
            requirePrograms(obj, Object.values(HOST_TC_PROGRAMS));
          } catch (err) {
            obj.close();
            throw err;
          }
          return obj;
        }, opts.logger);
      host = hostLoad.value;
      // Optional objects: one the kernel rejects turns its feature off (kernel-features.ts).
      const protocols = opts.connectTimeLb === 'tcp' ? CTLB.TCP : CTLB.TCP | CTLB.UDP;
      const connectLoad = opts.connectTimeLb === 'disabled'
        ? { value: null, outcome: { loaded: false, skipped: 'disabled' } as const }
        : await loadOptional('connect-time-lb', async () => {
          const obj = await openBpfObject(join(dir, 'connect.bpf.o'), { ...common, rodata: { sl_ctlb_protocols: protocols } });
          try {
            requirePrograms(obj, CONNECT_PROGRAMS);
          } catch (err) {
            obj.close();
            throw err;
          }
          return obj;
        }, opts.logger);
      const sweep = opts.udpSocketSweep;
      const sweeper = sweep
        ? await UdpSocketSweeper.load({
          ...(typeof sweep === 'object' ? sweep : {}),
          pinDir: opts.pinDir,
          objectPath: join(dir, SOCKDESTROY_OBJECT),
          maxEntries,
          native,
          generations,
          ...(opts.logger ? { logger: opts.logger } : {}),
        })
        : null;
      const features = kernelFeatures({
        probes,
        tc: { loaded: true },
        connect: connectLoad.outcome,
        external: hostLoad.outcome,
        udpSocketSweep: !sweeper ? { loaded: false, skipped: 'disabled' } : sweeper.available ? { loaded: true } : { loaded: false, error: sweeper.loadError ?? 'not loaded' },
      });
      if (opts.logger) logKernelFeatures(opts.logger, features);
      const datapath = new Datapath(native, opts.pinDir, opts.connectTimeLb, tc, connectLoad.value, sweeper, upgrade, features, host, generations.starts);
      // The programs of earlier generations are held by what is attached, if anything, no more
      // by pins (an object not loaded this time, e.g. connect-time turned off, included).
      generations.prune();
      return datapath;
    } catch (err) {
      host?.close();
      tc.close();
      upgrade.restore();
      generations.abandon();
      throw err;
    }
  }

  /** False when connect-time load balancing is disabled or its object did not load on this kernel. */
  get connectTimeAvailable(): boolean {
    return this.connect !== null;
  }

  /**
   * Connect-time load balancing on a cgroup (v2 directory): the four sock_addr programs as pinned
   * links, updated in place when a previous agent left them. In 'disabled' mode, or when the
   * kernel rejected connect.bpf.o, any links a previous agent left on this cgroup are removed.
   */
  attachConnectTime(cgroupPath: string): CgroupAttachReport & { detached: number } {
    if (!this.connect) return { updated: [], created: [], detached: detachCgroupLinks(this.native, this.pinDir, cgroupPath) };
    const programs = CONNECT_PROGRAMS.map((name) => (this.connect as NativeObject).program(name));
    return { ...attachCgroupLinks(this.native, this.pinDir, cgroupPath, programs), detached: 0 };
  }

  /** Removes the connect-time programs from a cgroup. Returns how many links went. */
  detachConnectTime(cgroupPath: string): number {
    return detachCgroupLinks(this.native, this.pinDir, cgroupPath);
  }

  /**
   * The TC programs on a workload interface (the host side of a pod's veth): from_pod on ingress,
   * to_pod on egress, replacing Sluice's filters in place. The ifindex is resolved in the network
   * namespace of this process, or of `target.netns` when given.
   */
  async attachTc(target: TcTarget): Promise<Record<'ingress' | 'egress', number>> {
    // Upgrade hooks: flows the old programs opened since the carry-over, copied before the switch
    // and again right after it; in between, packets of a flow the new program cannot find go to
    // the old one (the hand-off, handoff.ts).
    if (this.upgrade.pending) this.upgrade.catchUp(this.tc);
    const programs = { ingress: this.tc.program(TC_PROGRAMS.ingress), egress: this.tc.program(TC_PROGRAMS.egress) };
    const ids = await attachTcFilters(this.native, target, programs, (previous) => {
      this.upgrade.handOff(this.tc, previous, { ingress: programs.ingress.info.id, egress: programs.egress.info.id });
    });
    if (this.upgrade.pending) this.upgrade.catchUp(this.tc);
    return ids;
  }

  /**
   * The external-traffic programs on a host-facing interface (eth0, ens5, ...): sl_host_ingress
   * and sl_host_egress, with Sluice's handle and priority, replaced in place. Needs hostPrograms.
   */
  async attachHostTc(target: TcTarget): Promise<Record<'ingress' | 'egress', number>> {
    const host = this.host;
    if (!host) throw new Error('datapath: host programs were not loaded (hostPrograms: false)');
    return attachTcFilters(this.native, target, {
      ingress: host.program(HOST_TC_PROGRAMS.ingress),
      egress: host.program(HOST_TC_PROGRAMS.egress),
    });
  }

  /** A map of the shared set by name, through the tc object's handle (e.g. sl_node_config). */
  map(name: string): NativeMap {
    return this.tc.map(name);
  }

  async detachTc(target: TcTarget): Promise<number> {
    return detachTcFilters(this.native, target);
  }

  /**
   * After an upgrade over maps of another layout or size (see map-migration.ts): call once every
   * program is attached (attachConnectTime, attachTc on each interface). Copies what the old
   * programs created meanwhile and removes the old maps' pins. Nothing to do otherwise.
   */
  finishUpgrade(): MapCarryReport[] {
    return this.upgrade.finish(this.tc);
  }

  /** The previous build's programs taking the packets the new ones cannot place, by hook (handoff.ts). */
  get handoffSlots(): ReadonlyMap<'ingress' | 'egress', number> {
    return this.upgrade.handoffSlots;
  }

  /** Maps carried over to a new layout or size at load (empty when none needed it). */
  get upgradeReports(): readonly MapCarryReport[] {
    return this.upgrade.reports;
  }

  /** Program ids, for status and tests. */
  programIds(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const obj of [this.tc, this.connect, this.host]) for (const p of obj?.programs() ?? []) out[p.name] = p.id;
    const sweeper = this.udpSocketSweeper?.programInfo();
    if (sweeper) out[sweeper.name] = sweeper.id;
    return out;
  }

  /**
   * Closes our handles. Attached programs stay (pinned links and TC filters hold them) and the
   * pinned maps keep their state: the dataplane keeps working while the agent is down.
   */
  close(): void {
    this.udpSocketSweeper?.close();
    this.host?.close();
    this.connect?.close();
    this.tc.close();
  }
}

function requirePrograms(obj: NativeObject, names: readonly string[]): void {
  const have = obj.programs().map((p) => p.name);
  const missing = names.filter((n) => !have.includes(n));
  if (missing.length > 0) throw new Error(`datapath: ${obj.path} lacks program(s) ${missing.join(', ')} (has: ${have.join(', ')})`);
}
