// Decoded views of the maps, joined with service-port keys (sl_svc_meta), for sluicectl and the
// admin socket. They read the maps themselves (not the writer's mirror), so they show what the
// programs see, and work over pinned maps while the agent is down.
import type { CtKey4 } from '../bpf/sluice-structs.js';
import { CT_F, CT_STATE, CT_TYPE, DROP_REASONS } from '../bpf/sluice-structs.js';
import { unnamedKey } from './mirror.js';
import type { ServiceTables } from './tables.js';
import { TABLE_ROLES } from './tables.js';

const NS_PER_SEC = 1e9;
const STATE_NAMES = new Map<number, string>(Object.entries(CT_STATE).map(([name, n]) => [n, name.toLowerCase()]));

export function serviceNames(tables: ServiceTables): Map<number, string> {
  return new Map(tables.svcMeta.entries().filter(([, m]) => m.name !== '').map(([id, m]) => [id, m.name]));
}

export interface FrontendDump {
  addr: string;
  port: number;
  proto: number;
  flags: number;
  backendId: number;
  count: number;
  localCount: number;
  affinityTimeoutSec: number;
}

export interface BackendDump {
  backendId: number;
  ordinal: number;
  /** Which set the ordinal belongs to for the frontends that read this block. */
  set: 'cluster' | 'local';
  addr: string;
  port: number;
  flags: number;
  nodeAddr: string;
}

export interface ServiceDump {
  key: string;
  svcId: number;
  frontends: FrontendDump[];
  backends: BackendDump[];
  /** Every ordinal the frontends read exists: false means a half-written service (a bug). */
  complete: boolean;
}

/** Services with their frontends and the backend blocks those point at, by key. */
export function dumpServices(tables: ServiceTables): ServiceDump[] {
  const names = serviceNames(tables);
  const blocks = new Map<number, Map<number, BackendDump>>();
  for (const [k, v] of tables.backends.entries()) {
    let block = blocks.get(k.backend_id);
    if (!block) blocks.set(k.backend_id, (block = new Map()));
    block.set(k.ordinal, { backendId: k.backend_id, ordinal: k.ordinal, set: 'cluster', addr: v.addr, port: v.port, flags: v.flags, nodeAddr: v.node_addr });
  }
  const byId = new Map<number, ServiceDump>();
  for (const [id, key] of names) byId.set(id, { key, svcId: id, frontends: [], backends: [], complete: true });
  for (const [k, v] of tables.frontends.entries()) {
    let svc = byId.get(v.svc_id);
    if (!svc) byId.set(v.svc_id, (svc = { key: unnamedKey(v.svc_id), svcId: v.svc_id, frontends: [], backends: [], complete: true }));
    svc.frontends.push({
      addr: k.addr, port: k.port, proto: k.proto, flags: v.flags, backendId: v.backend_id,
      count: v.count, localCount: v.local_count, affinityTimeoutSec: v.affinity_timeout_s,
    });
  }
  for (const svc of byId.values()) {
    const seen = new Set<number>();
    for (const fe of svc.frontends) {
      if (seen.has(fe.backendId)) continue;
      seen.add(fe.backendId);
      for (let ordinal = 0; ordinal < fe.count + fe.localCount; ordinal++) {
        const be = blocks.get(fe.backendId)?.get(ordinal);
        if (!be) {
          svc.complete = false;
          continue;
        }
        svc.backends.push({ ...be, set: ordinal < fe.count ? 'cluster' : 'local' });
      }
    }
    svc.frontends.sort((a, b) => a.addr.localeCompare(b.addr) || a.port - b.port);
  }
  return [...byId.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export interface ConntrackDump {
  key: CtKey4;
  type: 'forward' | 'reverse' | 'unknown';
  state: string;
  svcId: number;
  service: string | undefined;
  natAddr: string;
  natPort: number;
  hairpin: boolean;
  ageSec: number;
  idleSec: number;
}

/** CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns(). */
export const monotonicNowNs = (): bigint => process.hrtime.bigint();

const secondsSince = (nowNs: bigint, thenNs: bigint): number => (thenNs > nowNs ? 0 : Number(nowNs - thenNs) / NS_PER_SEC);

export function dumpConntrack(tables: ServiceTables, opts: { nowNs?: bigint; svcKey?: string } = {}): ConntrackDump[] {
  const now = opts.nowNs ?? monotonicNowNs();
  const names = serviceNames(tables);
  const out: ConntrackDump[] = [];
  for (const [k, v] of tables.ct.entries()) {
    const service = names.get(v.svc_id);
    if (opts.svcKey !== undefined && service !== opts.svcKey) continue;
    out.push({
      key: k,
      type: v.type === CT_TYPE.FORWARD ? 'forward' : v.type === CT_TYPE.REVERSE ? 'reverse' : 'unknown',
      state: STATE_NAMES.get(v.state) ?? `state-${v.state}`,
      svcId: v.svc_id,
      service,
      natAddr: v.nat_addr,
      natPort: v.nat_port,
      hairpin: (v.flags & CT_F.HAIRPIN) !== 0,
      ageSec: secondsSince(now, v.created_ns),
      idleSec: secondsSince(now, v.last_seen_ns),
    });
  }
  return out;
}

export interface AffinityDump {
  svcId: number;
  service: string | undefined;
  clientAddr: string;
  backendAddr: string;
  backendPort: number;
  idleSec: number;
}

export function dumpAffinity(tables: ServiceTables, nowNs: bigint = monotonicNowNs()): AffinityDump[] {
  const names = serviceNames(tables);
  return tables.affinity.entries().map(([k, v]) => ({
    svcId: k.svc_id, service: names.get(k.svc_id), clientAddr: k.client_addr,
    backendAddr: v.backend_addr, backendPort: v.backend_port, idleSec: secondsSince(nowNs, v.last_used_ns),
  }));
}

export interface CountersDump {
  svcId: number;
  service: string | undefined;
  packets: number;
  bytes: number;
  connections: number;
  rejected: number;
}

/** Per-service counters summed over CPUs (services with all-zero counters are left out). */
export function dumpCounters(tables: ServiceTables): CountersDump[] {
  const names = serviceNames(tables);
  return tables.counters.entries().map(([id, perCpu]) => {
    const sum = (f: 'packets' | 'bytes' | 'connections' | 'rejected'): number => Number(perCpu.reduce((a, c) => a + c[f], 0n));
    return { svcId: id, service: names.get(id), packets: sum('packets'), bytes: sum('bytes'), connections: sum('connections'), rejected: sum('rejected') };
  });
}

/** Drops by reason name, summed over CPUs. */
export function dumpDrops(tables: ServiceTables): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [reason, perCpu] of tables.dropCounters.entries()) {
    out[DROP_REASONS[reason] ?? `reason-${reason}`] = Number(perCpu.reduce((a, c) => a + c, 0n));
  }
  return out;
}

export interface MapFill {
  map: string;
  entries: number;
  maxEntries: number;
  /** entries / maxEntries. */
  fill: number;
}

/** How full each map is (array maps count their non-empty slots). */
export function mapFill(tables: ServiceTables): MapFill[] {
  return TABLE_ROLES.map((role) => {
    const table = tables[role];
    const entries = table.entries().length;
    return { map: table.name, entries, maxEntries: table.maxEntries, fill: table.maxEntries ? entries / table.maxEntries : 0 };
  });
}
