// Builders for desired state and the replay check of the in-memory tables' operation log: after
// EVERY logged map write, every frontend must point at a complete backend block, a block must not
// change while a frontend points at it, and a frontend's svc_id must already be named.
import type { BackendValue4, FrontendKey4, ServiceValue } from '../../src/bpf/sluice-structs.js';
import type { Backend, DesiredServicePort, DesiredState, Frontend, L4Protocol } from '../../src/model/types.js';
import type { MemoryServiceTables, TableOp } from '../../src/dataplane/memory-tables.js';
import { BackendList } from '../../src/model/backend-list.js';

export function backend(ip: string, port = 8080, extra: Partial<Backend> = {}): Backend {
  return { ip, port, nodeName: null, zone: null, local: false, ready: true, serving: true, terminating: false, ...extra };
}

export interface PortSpec {
  name?: string;
  protocol?: L4Protocol;
  vip?: string;
  port?: number;
  frontends?: Frontend[];
  backends?: Backend[];
  local?: Backend[];
  internalLocal?: boolean;
  externalLocal?: boolean;
  affinity?: number;
  sourceRanges?: string[];
  family?: 'IPv4' | 'IPv6';
}

/** A service port `default/<name>:/<protocol>/IPv4` with a ClusterIP frontend by default. */
export function svcPort(spec: PortSpec = {}): DesiredServicePort {
  const name = spec.name ?? 'web';
  const protocol = spec.protocol ?? 'TCP';
  const family = spec.family ?? 'IPv4';
  return {
    key: `default/${name}:/${protocol}/${family}`,
    namespace: 'default',
    name,
    portName: '',
    protocol,
    family,
    frontends: spec.frontends ?? [{ kind: 'ClusterIP', ip: spec.vip ?? '10.96.0.10', port: spec.port ?? 80 }],
    clusterBackends: BackendList.of(spec.backends ?? [backend('10.1.0.1'), backend('10.1.0.2')]),
    localBackends: BackendList.of(spec.local ?? []),
    internalLocal: spec.internalLocal ?? false,
    externalLocal: spec.externalLocal ?? false,
    affinityTimeoutSec: spec.affinity ?? 0,
    healthCheckNodePort: 0,
    loadBalancerSourceRanges: spec.sourceRanges ?? [],
  };
}

export function desired(...ports: DesiredServicePort[]): DesiredState {
  return { services: new Map(ports.map((p) => [p.key, p])) };
}

/** n services `svc-<i>` (VIP 10.96.x.y:80) with `backends` backends each. */
export function manyServices(n: number, backends: number, protocol: L4Protocol = 'TCP'): DesiredState {
  const ports: DesiredServicePort[] = [];
  for (let i = 0; i < n; i++) {
    const vip = `10.96.${(i >> 8) & 255}.${i & 255}`;
    const bes = Array.from({ length: backends }, (_, j) => backend(`10.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`, 8000 + j));
    ports.push(svcPort({ name: `svc-${i}`, protocol, vip, backends: bes }));
  }
  return desired(...ports);
}

const fid = (k: FrontendKey4): string => `${k.addr}:${k.port}/${k.proto}/${k.scope}`;
const bid = (id: number, ord: number): string => `${id}#${ord}`;

/** The contents of the service maps, for replays and comparisons. */
export interface ServiceMapsState {
  frontends: Map<string, { key: FrontendKey4; value: ServiceValue }>;
  backends: Map<string, BackendValue4>;
  names: Map<number, string>;
}

export function snapshot(tables: MemoryServiceTables): ServiceMapsState {
  return {
    frontends: new Map(tables.frontends.entries().map(([k, v]) => [fid(k), { key: k, value: v }])),
    backends: new Map(tables.backends.entries().map(([k, v]) => [bid(k.backend_id, k.ordinal), v])),
    names: new Map(tables.svcMeta.entries().map(([k, v]) => [k, v.name])),
  };
}

/**
 * Replays `ops` over `initial` and returns every violation of the no-half-written-service rule
 * (empty = the ordering is safe at every step). Checks incrementally, so 10k services stay fast.
 */
export function replayViolations(initial: ServiceMapsState, ops: readonly TableOp[]): string[] {
  const fe = new Map(initial.frontends);
  const be = new Map(initial.backends);
  const names = new Map(initial.names);
  const violations: string[] = [];
  /** backend_id → frontend id → ordinals it reads. */
  const readers = new Map<number, Map<string, number>>();
  const addReader = (id: string, v: ServiceValue): void => {
    let m = readers.get(v.backend_id);
    if (!m) readers.set(v.backend_id, (m = new Map()));
    m.set(id, v.count + v.local_count);
  };
  const dropReader = (id: string, v: ServiceValue): void => {
    readers.get(v.backend_id)?.delete(id);
  };
  const used = (backendId: number): number => Math.max(0, ...(readers.get(backendId)?.values() ?? []));
  for (const [id, { value }] of fe) addReader(id, value);

  for (const op of ops) {
    const at = `op #${op.seq} (${op.op} ${op.map})`;
    if (op.map === 'sl_frontends4') {
      const key = op.key as FrontendKey4;
      const id = fid(key);
      const prev = fe.get(id);
      if (prev) dropReader(id, prev.value);
      if (op.op === 'delete') {
        fe.delete(id);
        continue;
      }
      const v = op.value as ServiceValue;
      fe.set(id, { key, value: v });
      addReader(id, v);
      for (let o = 0; o < v.count + v.local_count; o++) {
        if (!be.has(bid(v.backend_id, o))) violations.push(`${at}: frontend ${id} points at block ${v.backend_id} which lacks ordinal ${o}`);
      }
      if (!names.has(v.svc_id)) violations.push(`${at}: frontend ${id} names svc_id ${v.svc_id} before sl_svc_meta does`);
    } else if (op.map === 'sl_backends4') {
      const k = op.key as { backend_id: number; ordinal: number };
      if (k.ordinal < used(k.backend_id)) {
        violations.push(`${at}: block ${k.backend_id} ordinal ${k.ordinal} changed while a frontend reads it`);
      }
      if (op.op === 'delete') be.delete(bid(k.backend_id, k.ordinal));
      else be.set(bid(k.backend_id, k.ordinal), op.value as BackendValue4);
    } else if (op.map === 'sl_svc_meta') {
      const id = op.key as number;
      const name = op.op === 'delete' ? '' : (op.value as { name: string }).name;
      if (name === '') names.delete(id);
      else names.set(id, name);
      const stillUsed = [...fe.values()].some((f) => f.value.svc_id === id);
      if (name === '' && stillUsed) violations.push(`${at}: svc_id ${id} unnamed while a frontend still uses it`);
    }
  }
  return violations;
}

/** The state as service key → sorted frontend ids and the backend list each frontend reaches. */
export function servicesView(state: ServiceMapsState): Map<string, { frontends: string[]; backends: string[][] }> {
  const out = new Map<string, { frontends: string[]; backends: string[][] }>();
  for (const [id, { value }] of [...state.frontends].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const key = state.names.get(value.svc_id) ?? `#${value.svc_id}`;
    let svc = out.get(key);
    if (!svc) out.set(key, (svc = { frontends: [], backends: [] }));
    const list: string[] = [];
    for (let o = 0; o < value.count + value.local_count; o++) {
      const b = state.backends.get(bid(value.backend_id, o));
      list.push(b ? `${b.addr}:${b.port}${o >= value.count ? '(local)' : ''}` : 'MISSING');
    }
    svc.frontends.push(`${id} flags=${value.flags}`);
    svc.backends.push(list);
  }
  return out;
}
