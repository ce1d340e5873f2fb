// How each table's keys and values are encoded, and what kind of map holds them. Shared by the
// kernel-backed and the in-memory tables, so both see exactly the same bytes.
import type { Codec } from '../bpf/codec.js';
import { perCpuCodec } from '../bpf/per-cpu.js';
import {
  affinityKey4, affinityKey6, affinityValue4, affinityValue6, backendKey, backendValue4, backendValue6, ctKey4, ctKey6, ctValue4,
  ctValue6, DROP_REASON_MAX, frontendKey4, frontendKey6, maglevChunk, maglevKey, MAP_CAPACITY, MAP_CAPACITY6, serviceValue, sockRevnatKey4,
  sockRevnatKey6, sockRevnatValue4, sockRevnatValue6, svcCounters, svcMeta, u32Key, u64Value, vipKey4, vipKey6, vipValue,
} from '../bpf/sluice-structs.js';
import type { MaglevChunk, MaglevKey } from '../bpf/sluice-structs.js';
import type { ServiceTables, Table, TableFamily, TableRole } from './tables.js';
import { mapNamesOf } from './tables.js';

/** hash: plain hash map; lru: the kernel evicts when full; array: fixed indexes, zero = empty. */
export type TableKind = 'hash' | 'lru' | 'array';

/** Tables outside ServiceTables, kept by their own writers (e.g. maglev-writer.ts). */
export type ExtraTableRole = 'maglev';

export interface TableSpec<K, V> {
  role: TableRole | ExtraTableRole;
  name: string;
  kind: TableKind;
  key: Codec<K>;
  value: Codec<V>;
  /** The capacity compiled into the objects (sl_map_capacity of sluice.h, checked against BTF). */
  defaultMaxEntries: number;
  /**
   * Why user space may size this map before load (DatapathOptions.maxEntries), or false when its
   * size is fixed by what indexes it.
   */
  sizable: string | false;
}

type KeyOf<T> = T extends Table<infer K, unknown> ? K : never;
type ValueOf<T> = T extends Table<unknown, infer V> ? V : never;
export type TableSpecs = { [R in TableRole]: TableSpec<KeyOf<ServiceTables[R]>, ValueOf<ServiceTables[R]>> };

/**
 * Struct codecs by C struct name that replace the declared ones: the layouts the loaded object's
 * BTF gives (src/bpf/btf-codec.ts), when it grew members this build's codecs do not declare.
 */
export type StructLayouts = ReadonlyMap<string, Codec<unknown>>;

/**
 * Every table: its map, layout, default capacity, and whether and why it may be sized. The one
 * place that says which maps are sizable; the map names are MAP_NAMES (tables.ts), and both are
 * checked against each loaded object (checkTableSpecs).
 */
export function tableSpecs(cpus: number, layouts?: StructLayouts, family: TableFamily = 'IPv4'): TableSpecs {
  const follow = <T>(c: Codec<T>): Codec<T> => (layouts?.get(c.name) as Codec<T> | undefined) ?? c;
  const names = mapNamesOf(family);
  const spec = <K, V>(role: TableRole, kind: TableKind, key: Codec<K>, value: Codec<V>, max: number, sizable: string | false): TableSpec<K, V> => ({
    role, name: names[role], kind, key: follow(key), value: follow(value), defaultMaxEntries: max, sizable,
  });
  const bySvcId = 'indexed by svc_id: one slot per Service port; sl_svc_counters and sl_svc_meta must be sized alike';
  // The IPv6 codecs have the IPv4 ones' JS shapes (addresses as text): one TableSpecs type.
  const v6 = family === 'IPv6';
  return {
    frontends: spec('frontends', 'hash', v6 ? frontendKey6 : frontendKey4, serviceValue, MAP_CAPACITY.FRONTENDS, 'one entry per frontend (Service port x address)'),
    backends: spec('backends', 'hash', backendKey, v6 ? backendValue6 : backendValue4, MAP_CAPACITY.BACKENDS,
      "one entry per slot of every service's backend block, a block being replaced included"),
    ct: spec('ct', 'lru', v6 ? ctKey6 : ctKey4, v6 ? ctValue6 : ctValue4, v6 ? MAP_CAPACITY6.CT6 : MAP_CAPACITY.CT,
      'two entries per flow on the TC path: grows with traffic, not Services'),
    affinity: spec('affinity', 'lru', v6 ? affinityKey6 : affinityKey4, v6 ? affinityValue6 : affinityValue4, v6 ? MAP_CAPACITY6.AFFINITY6 : MAP_CAPACITY.AFFINITY,
      'one entry per (Service port, client) with ClientIP affinity'),
    sockRevnat: spec('sockRevnat', 'lru', v6 ? sockRevnatKey6 : sockRevnatKey4, v6 ? sockRevnatValue6 : sockRevnatValue4,
      v6 ? MAP_CAPACITY6.SOCK_REVNAT6 : MAP_CAPACITY.SOCK_REVNAT, 'one entry per socket balanced at connect time: grows with connections'),
    svcMeta: spec('svcMeta', 'array', u32Key, svcMeta, MAP_CAPACITY.SVC_IDS, bySvcId),
    counters: spec('counters', 'array', u32Key, perCpuCodec(follow(svcCounters), cpus), MAP_CAPACITY.SVC_IDS, bySvcId),
    dropCounters: spec('dropCounters', 'array', u32Key, perCpuCodec(u64Value, cpus), DROP_REASON_MAX, false),
    vips: spec('vips', 'hash', v6 ? vipKey6 : vipKey4, vipValue, MAP_CAPACITY.VIPS, 'one entry per ClusterIP'),
  };
}

/**
 * sl_maglev4 (bpf/lib/maglev.h): the Maglev tables of external services, one per backend block,
 * each ceil(size / SL_MAGLEV_CHUNK) chunks (64 at the default 16,381 slots). Written by
 * MaglevWriter (maglev-writer.ts), not part of ServiceTables.
 */
export function maglevTableSpec(): TableSpec<MaglevKey, MaglevChunk> {
  return {
    role: 'maglev', name: 'sl_maglev4', kind: 'hash', key: maglevKey, value: maglevChunk, defaultMaxEntries: MAP_CAPACITY.MAGLEV_CHUNKS,
    sizable: 'chunks of the external services\' Maglev tables: services x ceil(table size / 256), a block being replaced included',
  };
}

/** Every table spec of both families and the Maglev tables, each map once (the shared ones are in both). */
export function allTableSpecs(cpus: number): Array<TableSpec<unknown, unknown>> {
  const byName = new Map<string, TableSpec<unknown, unknown>>();
  for (const family of ['IPv4', 'IPv6'] as const) {
    for (const spec of Object.values(tableSpecs(cpus, undefined, family))) byName.set(spec.name, spec as TableSpec<unknown, unknown>);
  }
  return [...byName.values(), maglevTableSpec() as TableSpec<unknown, unknown>];
}

/** Names of the maps user space may size (see TableSpec.sizable). */
export const SIZABLE_MAP_NAMES: readonly string[] = allTableSpecs(1).filter((s) => s.sizable).map((s) => s.name);

/** What checkTableSpecs needs of a loaded (or opened) object. */
interface ObjectMaps {
  readonly path: string;
  maps(): readonly { name: string; maxEntries: number }[];
}

/**
 * Checks the table specs against an object: every table's map exists under its name with the
 * capacity it was given in `sized`, else the spec's default. Throws an Error naming every map
 * that disagrees.
 */
export function checkTableSpecs(obj: ObjectMaps, sized: Readonly<Record<string, number>> = {}): void {
  const maps = new Map(obj.maps().map((m) => [m.name, m]));
  const problems: string[] = [];
  for (const spec of allTableSpecs(1)) {
    const map = maps.get(spec.name);
    const want = sized[spec.name] ?? spec.defaultMaxEntries;
    if (!map) problems.push(`no map ${spec.name}`);
    else if (map.maxEntries !== want) problems.push(`${spec.name} has max_entries ${map.maxEntries}, the table spec ${want}`);
  }
  if (problems.length > 0) throw new Error(`${obj.path}: the maps disagree with src/dataplane/table-specs.ts: ${problems.join('; ')}`);
}

/** True when every byte of buf[at, at + size) is zero: an empty array slot. */
export function isZero(buf: Buffer, at: number, size: number): boolean {
  // A native compare: reading the 65536-slot sl_svc_meta array checks 12.6 MB this way, which
  // a byte loop in JS took ~150 ms for (docs/benchmarks.md).
  if (zeros.length < size) zeros = Buffer.alloc(Math.max(size, zeros.length * 2));
  return buf.compare(zeros, 0, size, at, at + size) === 0;
}

let zeros = Buffer.alloc(256);

/** Slots of one run checked by a single compare: a mostly free array is skipped a run at a time. */
const RUN = 64;

/**
 * Indices of the non-zero slots among `count` slots of `size` bytes in `buf` — what reading an
 * array map keeps. Runs of RUN slots are compared at once: a fresh 65536-slot sl_svc_meta costs
 * 1024 compares instead of 65536.
 */
export function nonZeroSlots(buf: Buffer, count: number, size: number): number[] {
  const out: number[] = [];
  for (let run = 0; run < count; run += RUN) {
    const n = Math.min(RUN, count - run);
    if (isZero(buf, run * size, n * size)) continue;
    for (let i = run; i < run + n; i++) if (!isZero(buf, i * size, size)) out.push(i);
  }
  return out;
}

/**
 * sl_tunnel_nodes4 (host.bpf.o only, not a service table): the cluster's node addresses, the only
 * sources tunnel traffic is decapsulated from (src/agent/tunnel-nodes.ts). Its capacity is the
 * compiled SL_MAX_TUNNEL_NODES.
 */
export const TUNNEL_NODES_MAP = 'sl_tunnel_nodes4';
/** Both families' node address maps (sl_tunnel_nodes6: the Nodes' IPv6 addresses, lib/tunnel6.h). */
export const TUNNEL_NODES_MAPS = { IPv4: TUNNEL_NODES_MAP, IPv6: 'sl_tunnel_nodes6' } as const;
export const TUNNEL_NODES_MAX = MAP_CAPACITY.TUNNEL_NODES;

/**
 * sl_dsr_optout4 (host.bpf.o only): the client CIDRs that get Tunnel instead of DSR
 * (--dsr-optout-cidrs, src/agent/dsr-optout.ts). Its capacity is the compiled SL_MAX_DSR_OPTOUT.
 */
export const DSR_OPTOUT_MAP = 'sl_dsr_optout4';
/** Both families' opt-out tries (sl_dsr_optout6: the IPv6 CIDRs). */
export const DSR_OPTOUT_MAPS = { IPv4: DSR_OPTOUT_MAP, IPv6: 'sl_dsr_optout6' } as const;
export const DSR_OPTOUT_MAX = MAP_CAPACITY.DSR_OPTOUT;

/**
 * sl_src_ranges4 and sl_src_ranges6 (LPM tries, every object): loadBalancerSourceRanges by family
 * (src/dataplane/source-ranges.ts). Not sizable: each holds the compiled SL_MAX_SRC_RANGES ranges
 * of all services of its family.
 */
export const SRC_RANGES_MAPS = { IPv4: 'sl_src_ranges4', IPv6: 'sl_src_ranges6' } as const;
export const SRC_RANGES_MAX = MAP_CAPACITY.SRC_RANGES;
