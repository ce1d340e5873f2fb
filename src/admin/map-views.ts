// Decoded map entries → the admin API's views. Pure functions: the live agent and the
// pinned-map reader build identical answers from the same bytes.
import { BE_F, CT_F, CT_STATE, CT_TYPE, DROP_REASONS, FRONTEND_KIND_NAMES, IPPROTO, SVC_F, SVC_F_KIND_SHIFT } from '../bpf/sluice-structs.js';
import type {
  AffinityKey4, AffinityValue4, BackendKey, BackendValue4, CtKey4, CtValue4, FrontendKey4, ServiceValue, SvcCounters,
} from '../bpf/sluice-structs.js';
import { parseServiceKey } from './filters.js';
import type {
  AffinityView, BackendView, ConntrackEntryView, ConntrackView, CountersView, NatBackendEntry, NatFrontendEntry, NatView,
  ServiceView, ServicesView,
} from './types.js';

/** A decoded map element, as ServiceTables' Table.entries() returns it. */
export type Entry<K, V> = readonly [K, V];

/** svc_id → service-port key, from sl_svc_meta (or the agent's own table). */
export type ServiceNames = ReadonlyMap<number, string>;

const PROTOCOLS = new Map<number, string>(Object.entries(IPPROTO).map(([name, n]) => [n, name]));
export const protocolName = (proto: number): string => PROTOCOLS.get(proto) ?? `proto-${proto}`;

const SVC_FLAG_NAMES: [number, string][] = [
  [SVC_F.INTERNAL_LOCAL, 'internal-local'],
  [SVC_F.EXTERNAL_LOCAL, 'external-local'],
  [SVC_F.AFFINITY, 'affinity'],
  [SVC_F.EXTERNAL, 'external'],
  [SVC_F.SRC_RANGES, 'source-ranges'],
  [SVC_F.DSR, 'dsr'],
  [SVC_F.MAGLEV, 'maglev'],
];
const BE_FLAG_NAMES: [number, string][] = [
  [BE_F.LOCAL, 'local'],
  [BE_F.TERMINATING, 'terminating'],
];
const CT_FLAG_NAMES: [number, string][] = [
  [CT_F.HAIRPIN, 'hairpin'], [CT_F.EXTERNAL, 'external'], [CT_F.SNAT, 'snat'], [CT_F.TUNNEL, 'tunnel'], [CT_F.DECAP, 'decap'], [CT_F.DSR, 'dsr'], [CT_F.FIN_SEEN, 'fin-seen'],
];

/** Flag names for the bits set; unknown bits appear as 'bit-N' so nothing is hidden. */
export function flagNames(bits: number, names: [number, string][]): string[] {
  const out: string[] = [];
  let rest = bits;
  for (const [bit, name] of names) {
    if (bits & bit) out.push(name);
    rest &= ~bit;
  }
  for (let i = 0; i < 32; i++) if (rest & (1 << i)) out.push(`bit-${i}`);
  return out;
}

const CT_STATE_NAMES = new Map<number, string>(Object.entries(CT_STATE).map(([name, n]) => [n, name]));

/** Name for an svc_id with no metadata (a service being created or a leak worth seeing). */
export const unnamedService = (svcId: number): string => `svc#${svcId}`;
const nameOf = (names: ServiceNames, svcId: number): string => names.get(svcId) || unnamedService(svcId);

const compareHostPort = (a: { ip: string; port: number }, b: { ip: string; port: number }): number =>
  a.ip.localeCompare(b.ip, 'en', { numeric: true }) || a.port - b.port;

export function buildNatView(
  frontends: Entry<FrontendKey4, ServiceValue>[],
  backends: Entry<BackendKey, BackendValue4>[],
  names: ServiceNames,
): NatView {
  const fe: NatFrontendEntry[] = frontends.map(([key, value]) => ({
    ip: key.addr,
    port: key.port,
    protocol: protocolName(key.proto),
    scope: key.scope,
    svcId: value.svc_id,
    backendId: value.backend_id,
    count: value.count,
    localCount: value.local_count,
    kind: FRONTEND_KIND_NAMES[(value.flags >>> SVC_F_KIND_SHIFT) & 3] as string,
    flags: flagNames(value.flags & ~(3 << SVC_F_KIND_SHIFT), SVC_FLAG_NAMES),
    affinityTimeoutSec: value.affinity_timeout_s,
    service: nameOf(names, value.svc_id),
  }));
  fe.sort((a, b) => a.service.localeCompare(b.service) || compareHostPort(a, b) || a.protocol.localeCompare(b.protocol));
  const be: NatBackendEntry[] = backends.map(([key, value]) => ({
    backendId: key.backend_id,
    ordinal: key.ordinal,
    ip: value.addr,
    port: value.port,
    nodeIp: value.node_addr === '0.0.0.0' || value.node_addr === '::' ? '' : value.node_addr,
    flags: flagNames(value.flags, BE_FLAG_NAMES),
  }));
  be.sort((a, b) => a.backendId - b.backendId || a.ordinal - b.ordinal);
  return { frontends: fe, backends: be };
}

/**
 * Groups the NAT view into services: one per svc_id, with all its frontends and the backend
 * block they point at. `kindOf` may name frontend kinds precisely (the agent knows them);
 * the maps alone only say whether a frontend is external.
 */
export function buildServicesView(
  nat: NatView,
  kindOf?: (svcKey: string, ip: string, port: number) => ServiceView['frontends'][number]['kind'] | undefined,
): ServicesView {
  const blocks = new Map<number, NatBackendEntry[]>();
  for (const b of nat.backends) {
    const list = blocks.get(b.backendId) ?? [];
    list.push(b);
    blocks.set(b.backendId, list);
  }
  const bySvc = new Map<number, NatFrontendEntry[]>();
  for (const f of nat.frontends) {
    const list = bySvc.get(f.svcId) ?? [];
    list.push(f);
    bySvc.set(f.svcId, list);
  }
  const services: ServiceView[] = [];
  for (const [svcId, fes] of bySvc) {
    // A ClusterIP frontend is the reference; all frontends of a service port share one block
    // except for the instant of a switch.
    const ref = fes.find((f) => !f.flags.includes('external')) ?? fes[0];
    if (!ref) continue;
    const parts = parseServiceKey(ref.service);
    const block = (blocks.get(ref.backendId) ?? []).filter((b) => b.ordinal < ref.count + ref.localCount);
    const backends: BackendView[] = block.map((b) => ({
      ip: b.ip,
      port: b.port,
      ordinal: b.ordinal,
      set: b.ordinal < ref.count ? 'cluster' : 'local',
      nodeIp: b.nodeIp,
      local: b.flags.includes('local'),
      terminating: b.flags.includes('terminating'),
    }));
    services.push({
      key: ref.service,
      namespace: parts?.namespace ?? '',
      name: parts?.name ?? '',
      portName: parts?.portName ?? '',
      protocol: parts?.protocol ?? ref.protocol,
      family: parts?.family === 'IPv6' ? 'IPv6' : 'IPv4',
      svcId,
      backendId: ref.backendId,
      flags: [...new Set(fes.flatMap((f) => f.flags))].filter((f) => f !== 'external'),
      affinityTimeoutSec: ref.affinityTimeoutSec,
      frontends: fes
        .map((f) => ({
          ip: f.ip,
          port: f.port,
          kind: kindOf?.(ref.service, f.ip, f.port) ?? (f.flags.includes('external') ? 'External' : 'ClusterIP'),
        }))
        .sort((a, b) => (a.kind === 'ClusterIP' ? 0 : 1) - (b.kind === 'ClusterIP' ? 0 : 1) || compareHostPort(a, b)),
      clusterCount: ref.count,
      localCount: ref.localCount,
      backends,
    });
  }
  services.sort((a, b) => a.key.localeCompare(b.key) || a.svcId - b.svcId);
  return { services };
}

const secondsBetween = (nowNs: bigint, thenNs: bigint): number => (nowNs > thenNs ? Number((nowNs - thenNs) / 1_000_000_000n) : 0);

/** `nowNs` is CLOCK_MONOTONIC in ns (process.hrtime.bigint()), the clock bpf_ktime_get_ns reads. */
export function buildConntrackView(entries: Entry<CtKey4, CtValue4>[], names: ServiceNames, nowNs: bigint): ConntrackView {
  const out: ConntrackEntryView[] = entries.map(([key, value]) => {
    const forward = value.type !== CT_TYPE.REVERSE;
    const src = { ip: key.saddr, port: key.sport };
    const dst = { ip: key.daddr, port: key.dport };
    const nat = { ip: value.nat_addr, port: value.nat_port };
    return {
      protocol: protocolName(key.proto),
      direction: forward ? 'forward' : 'reverse',
      state: CT_STATE_NAMES.get(value.state) ?? `STATE_${value.state}`,
      // FORWARD key: client → frontend, translated to the backend.
      // REVERSE key: backend → client, source translated back to the frontend.
      client: forward ? src : dst,
      frontend: forward ? dst : nat,
      backend: forward ? nat : src,
      natSource: value.nat_saddr === '0.0.0.0' || value.nat_saddr === '::' ? '' : value.nat_saddr,
      svcId: value.svc_id,
      service: nameOf(names, value.svc_id),
      ageSec: secondsBetween(nowNs, value.created_ns),
      idleSec: secondsBetween(nowNs, value.last_seen_ns),
      flags: flagNames(value.flags, CT_FLAG_NAMES),
    };
  });
  out.sort(
    (a, b) =>
      a.service.localeCompare(b.service) ||
      compareHostPort(a.client, b.client) ||
      compareHostPort(a.backend, b.backend) ||
      a.direction.localeCompare(b.direction),
  );
  return { total: entries.length, entries: out };
}

export function buildAffinityView(
  entries: Entry<AffinityKey4, AffinityValue4>[],
  names: ServiceNames,
  timeouts: ReadonlyMap<number, number>,
  nowNs: bigint,
): AffinityView {
  const out = entries.map(([key, value]) => {
    const idleSec = secondsBetween(nowNs, value.last_used_ns);
    const timeoutSec = timeouts.get(key.svc_id) ?? 0;
    return {
      svcId: key.svc_id,
      service: nameOf(names, key.svc_id),
      client: key.client_addr,
      backend: { ip: value.backend_addr, port: value.backend_port },
      idleSec,
      timeoutSec,
      expired: timeoutSec === 0 || idleSec >= timeoutSec,
    };
  });
  out.sort((a, b) => a.service.localeCompare(b.service) || a.client.localeCompare(b.client, 'en', { numeric: true }));
  return { entries: out };
}

export function buildCountersView(
  perService: ReadonlyMap<number, SvcCounters>,
  drops: readonly bigint[],
  names: ServiceNames,
): CountersView {
  const services = [...perService].map(([svcId, c]) => {
    const service = nameOf(names, svcId);
    const parts = parseServiceKey(service);
    return {
      svcId,
      service,
      namespace: parts?.namespace ?? '',
      name: parts?.name ?? '',
      portName: parts?.portName ?? '',
      protocol: parts?.protocol ?? '',
      family: parts?.family ?? '',
      packets: Number(c.packets),
      bytes: Number(c.bytes),
      connections: Number(c.connections),
      rejected: Number(c.rejected),
    };
  });
  services.sort((a, b) => a.service.localeCompare(b.service) || a.svcId - b.svcId);
  const reasons = Math.max(DROP_REASONS.length, drops.length);
  const dropViews = [];
  // Reason 0 ('none') is never counted; skip it.
  for (let code = 1; code < reasons; code++) {
    const packets = Number(drops[code] ?? 0n);
    const reason = DROP_REASONS[code] ?? `reason-${code}`;
    // Unnamed reasons appear only when the datapath counted them (a newer program).
    if (code >= DROP_REASONS.length && packets === 0) continue;
    dropViews.push({ reason, code, packets });
  }
  return { services, drops: dropViews };
}

export const fillRatio = (entries: number, max: number): number => (max > 0 ? Math.round((entries / max) * 10_000) / 10_000 : 0);
