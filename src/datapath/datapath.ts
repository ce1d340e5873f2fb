// The datapath loader: loads dist/bpf/tc.bpf.o and dist/bpf/connect.bpf.o with their maps pinned by
// name in one directory (both objects share them, and a restarted agent finds its state there),
// sets the tunables before load (conntrack timeouts, connect-time protocols, map sizes), checks
// every struct codec against each object's BTF, and attaches the programs (see attach.ts).
// Optionally loads the UDP socket sweep (sockdestroy.bpf.o, see socket-sweep.ts) over the same maps.
import { existsSync, mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { loadNative, fromPackageRoot } from '../bpf/native.js';
import type { NativeAddon, NativeMap, NativeObject } from '../bpf/native.js';
import { openBpfObject } from '../bpf/loader.js';
import { allStructCodecs, CTLB } from '../bpf/sluice-structs.js';
import type { CgroupAttachReport, TcTarget } from './attach.js';
import { attachCgroupLinks, attachTcFilters, CONNECT_PROGRAMS, detachCgroupLinks, detachTcFilters, HOST_TC_PROGRAMS, TC_PROGRAMS } from './attach.js';
import { tablesFromObject } from '../dataplane/native-tables.js';
import type { ServiceTables } from '../dataplane/tables.js';
import { tableSpecs } from '../dataplane/table-specs.js';
import type { NamespaceSources } from './socket-sweep.js';
import { SOCKDESTROY_OBJECT, UdpSocketSweeper } from './socket-sweep.js';

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

/** Maps whose size may be configured (the per-service-id arrays share one size). */
export const SIZABLE_MAPS = ['sl_frontends4', 'sl_backends4', 'sl_ct4', 'sl_affinity4', 'sl_sock_revnat4', 'sl_svc_counters', 'sl_svc_meta'] as const;
export type SizableMap = (typeof SIZABLE_MAPS)[number];

export interface DatapathOptions {
  /** bpffs directory for the pinned maps and links (e.g. /sys/fs/bpf/sluice). */
  pinDir: string;
  connectTimeLb: ConnectTimeMode;
  /** Directory of tc.bpf.o and connect.bpf.o (default: dist/bpf of the package). */
  objectDir?: string;
  ctTimeoutsSec?: CtTimeoutsSec;
  /** Map capacities; sl_svc_counters and sl_svc_meta (indexed by svc_id) must be equal. */
  maxEntries?: Partial<Record<SizableMap, number>>;
  /**
   * Load sockdestroy.bpf.o so `udpSocketSweep` closes connected UDP sockets balanced to removed
   * backends, in every network namespace of the node (or where the options say). Optional: a
   * kernel without bpf_sock_destroy (< 6.5) gets a warning and no sweep.
   */
  udpSocketSweep?: boolean | (NamespaceSources & { namespaces?: () => Iterable<string> });
  /** Load host.bpf.o (external traffic on the node's host-facing interfaces) over the same maps. */
  hostPrograms?: boolean;
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

/**
 * Maps already pinned with another size or layout make libbpf refuse the load with a bare
 * EINVAL: say which map differs and what to do instead.
 */
function checkPinnedMaps(native: NativeAddon, pinDir: string, max: Partial<Record<string, number>>): void {
  for (const spec of Object.values(tableSpecs(1))) {
    const path = join(pinDir, spec.name);
    if (!existsSync(path)) continue;
    const map = native.openPinnedMap(path);
    try {
      const want = max[spec.name] ?? spec.defaultMaxEntries;
      const { maxEntries, keySize } = map.info;
      if (maxEntries !== want || keySize !== spec.key.size) {
        throw new Error(
          `datapath: pinned map ${path} has max_entries ${maxEntries} and ${keySize}-byte keys; this agent wants ${want} and ${spec.key.size}. ` +
            'A pinned map cannot be resized: run `sluice-agent cleanup` (drops conntrack and affinity) or keep the old size',
        );
      }
    } finally {
      map.close();
    }
  }
}

export class Datapath {
  /** The service maps, through the tc object's handles. */
  readonly tables: ServiceTables;

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
    private readonly host: NativeObject | null = null,
  ) {
    this.tables = tablesFromObject(tc, native.numPossibleCpus());
    if (udpSocketSweeper?.available) this.udpSocketSweep = () => void udpSocketSweeper.sweep();
  }

  static async load(opts: DatapathOptions): Promise<Datapath> {
    validate(opts);
    const native = opts.native ?? loadNative();
    const dir = opts.objectDir ?? fromPackageRoot('dist', 'bpf');
    preparePinDir(opts.pinDir);
    const maxEntries: Record<string, number> = { ...opts.maxEntries };
    checkPinnedMaps(native, opts.pinDir, maxEntries);
    const common = { pinRoot: opts.pinDir, maxEntries, codecs: allStructCodecs, addon: native, ...(opts.logger ? { logger: opts.logger } : {}) };

    const rodata: Record<string, bigint> = {};
    for (const [name, sec] of Object.entries(opts.ctTimeoutsSec ?? {})) {
      rodata[CT_TUNABLES[name as keyof CtTimeoutsSec]] = BigInt(Math.round(sec * 1e9));
    }
    const tc = await openBpfObject(join(dir, 'tc.bpf.o'), { ...common, rodata });
    let connect: NativeObject | null = null;
    let host: NativeObject | null = null;
    try {
      requirePrograms(tc, Object.values(TC_PROGRAMS));
      if (opts.hostPrograms) {
        host = await openBpfObject(join(dir, 'host.bpf.o'), { ...common, rodata });
        requirePrograms(host, Object.values(HOST_TC_PROGRAMS));
      }
      if (opts.connectTimeLb !== 'disabled') {
        const protocols = opts.connectTimeLb === 'tcp' ? CTLB.TCP : CTLB.TCP | CTLB.UDP;
        connect = await openBpfObject(join(dir, 'connect.bpf.o'), { ...common, rodata: { sl_ctlb_protocols: protocols } });
        requirePrograms(connect, CONNECT_PROGRAMS);
      }
      const sweep = opts.udpSocketSweep;
      const sweeper = sweep
        ? await UdpSocketSweeper.load({
          ...(typeof sweep === 'object' ? sweep : {}),
          pinDir: opts.pinDir,
          objectPath: join(dir, SOCKDESTROY_OBJECT),
          maxEntries,
          native,
          ...(opts.logger ? { logger: opts.logger } : {}),
        })
        : null;
      return new Datapath(native, opts.pinDir, opts.connectTimeLb, tc, connect, sweeper, host);
    } catch (err) {
      host?.close();
      connect?.close();
      tc.close();
      throw err;
    }
  }

  /**
   * Connect-time load balancing on a cgroup (v2 directory): the four sock_addr programs as pinned
   * links, updated in place when a previous agent left them. In 'disabled' mode any links a
   * previous agent left on this cgroup are removed instead.
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
    return attachTcFilters(this.native, target, {
      ingress: this.tc.program(TC_PROGRAMS.ingress),
      egress: this.tc.program(TC_PROGRAMS.egress),
    });
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
