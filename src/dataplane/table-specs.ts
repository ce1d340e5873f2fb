// How each table's keys and values are encoded, and what kind of map holds them. Shared by the
// kernel-backed and the in-memory tables, so both see exactly the same bytes.
import type { Codec } from '../bpf/codec.js';
import { perCpuCodec } from '../bpf/per-cpu.js';
import {
  affinityKey4, affinityValue4, backendKey, backendValue4, ctKey4, ctValue4, frontendKey4, serviceValue,
  sockRevnatKey4, sockRevnatValue4, svcCounters, svcMeta, u32Key, u64Value, vipKey4, vipValue,
} from '../bpf/sluice-structs.js';
import type { ServiceTables, Table, TableRole } from './tables.js';
import { MAP_NAMES } from './tables.js';

/** hash: plain hash map; lru: the kernel evicts when full; array: fixed indexes, zero = empty. */
export type TableKind = 'hash' | 'lru' | 'array';

export interface TableSpec<K, V> {
  role: TableRole;
  name: string;
  kind: TableKind;
  key: Codec<K>;
  value: Codec<V>;
  /** SL_MAX_* of sluice.h: the capacity compiled into the objects. */
  defaultMaxEntries: number;
}

type KeyOf<T> = T extends Table<infer K, unknown> ? K : never;
type ValueOf<T> = T extends Table<unknown, infer V> ? V : never;
export type TableSpecs = { [R in TableRole]: TableSpec<KeyOf<ServiceTables[R]>, ValueOf<ServiceTables[R]>> };

/**
 * Struct codecs by C struct name that replace the declared ones: the layouts the loaded object's
 * BTF gives (src/bpf/btf-codec.ts), when it grew members this build's codecs do not declare.
 */
export type StructLayouts = ReadonlyMap<string, Codec<unknown>>;

export function tableSpecs(cpus: number, layouts?: StructLayouts): TableSpecs {
  const follow = <T>(c: Codec<T>): Codec<T> => (layouts?.get(c.name) as Codec<T> | undefined) ?? c;
  const spec = <K, V>(role: TableRole, kind: TableKind, key: Codec<K>, value: Codec<V>, max: number): TableSpec<K, V> => ({
    role, name: MAP_NAMES[role], kind, key: follow(key), value: follow(value), defaultMaxEntries: max,
  });
  return {
    frontends: spec('frontends', 'hash', frontendKey4, serviceValue, 65536),
    backends: spec('backends', 'hash', backendKey, backendValue4, 262144),
    ct: spec('ct', 'lru', ctKey4, ctValue4, 524288),
    affinity: spec('affinity', 'lru', affinityKey4, affinityValue4, 65536),
    sockRevnat: spec('sockRevnat', 'lru', sockRevnatKey4, sockRevnatValue4, 262144),
    svcMeta: spec('svcMeta', 'array', u32Key, svcMeta, 65536),
    counters: spec('counters', 'array', u32Key, perCpuCodec(follow(svcCounters), cpus), 65536),
    dropCounters: spec('dropCounters', 'array', u32Key, perCpuCodec(u64Value, cpus), 16),
    vips: spec('vips', 'hash', vipKey4, vipValue, 65536),
  };
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
