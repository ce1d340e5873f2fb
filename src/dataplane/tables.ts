// The map-access interface of the service-table writer: one typed table per pinned map. Two
// implementations satisfy it — over the kernel's maps (native-tables.ts) and in memory with an
// operation log (memory-tables.ts) — so the writer's ordering and failure handling are unit-tested
// against the same contract the kernel maps honour.
import type {
  AffinityKey4, AffinityValue4, BackendKey, BackendValue4, CtKey4, CtValue4, FrontendKey4, ServiceValue,
  SockRevnatKey4, SockRevnatValue4, SvcCounters, SvcMeta, VipKey4, VipValue,
} from '../bpf/sluice-structs.js';

/** One element that a batch call could not write or delete. */
export interface ElementFailure {
  /** Index into the array passed to setMany/deleteMany. */
  index: number;
  error: Error;
}

/**
 * What a batch call did. Every element is attempted: a failure does not stop the elements after
 * it (the native implementation falls back to element calls after a batch error), so callers know
 * exactly which elements are in the map.
 */
export interface BatchOutcome {
  /** Elements written (setMany) or deleted (deleteMany; keys already absent do not count). */
  done: number;
  failures: ElementFailure[];
}

/**
 * A typed BPF map. Hash maps: absent keys are absent. Array maps (svcMeta, counters): every index
 * exists, an all-zero value reads as absent, and delete() writes zeros. Per-CPU maps take and give
 * one value per possible CPU.
 */
export interface Table<K, V> {
  /** The pinned map's name, e.g. 'sl_frontends4'. */
  readonly name: string;
  readonly maxEntries: number;
  get(key: K): V | undefined;
  /** Creates or replaces one element (one atomic map update). Throws the map's error. */
  set(key: K, value: V): void;
  /** Returns false when the key was not there. Throws other map errors. */
  delete(key: K): boolean;
  /** Every present element, read in as few calls as the map allows. */
  entries(): Array<[K, V]>;
  /**
   * The present elements whose bytes `match` accepts (key and value as the map holds them, at
   * the given offsets), decoded; the others never are. A scan of a big map (512k conntrack
   * entries) then costs a few byte reads per element instead of two objects and their strings.
   */
  filterRaw(match: RawMatch): Array<[K, V]>;
  setMany(entries: ReadonlyArray<readonly [K, V]>): BatchOutcome;
  /** Absent keys are not failures. */
  deleteMany(keys: readonly K[]): BatchOutcome;
}

/** A predicate over one element's encoded key and value (buffers shared by many elements: read, don't keep). */
export type RawMatch = (key: Buffer, keyAt: number, value: Buffer, valueAt: number) => boolean;

/** Every map the writer, the dumps and the conntrack flush use (IPv4 twins; v6 follows by name). */
export interface ServiceTables {
  frontends: Table<FrontendKey4, ServiceValue>;
  backends: Table<BackendKey, BackendValue4>;
  ct: Table<CtKey4, CtValue4>;
  affinity: Table<AffinityKey4, AffinityValue4>;
  sockRevnat: Table<SockRevnatKey4, SockRevnatValue4>;
  /** svc_id → service-port key (array; name '' = free). */
  svcMeta: Table<number, SvcMeta>;
  /** svc_id → per-CPU counters (per-CPU array). */
  counters: Table<number, SvcCounters[]>;
  /** drop reason → per-CPU count (per-CPU array). */
  dropCounters: Table<number, bigint[]>;
  /** ClusterIPs that refuse the ports they do not serve. */
  vips: Table<VipKey4, VipValue>;
}

export type TableRole = keyof ServiceTables;

/** Pinned map name of each role (bpf/lib/maps.h). */
export const MAP_NAMES: Readonly<Record<TableRole, string>> = {
  frontends: 'sl_frontends4',
  backends: 'sl_backends4',
  ct: 'sl_ct4',
  affinity: 'sl_affinity4',
  sockRevnat: 'sl_sock_revnat4',
  svcMeta: 'sl_svc_meta',
  counters: 'sl_svc_counters',
  dropCounters: 'sl_drop_counters',
  vips: 'sl_vips4',
};

export const TABLE_ROLES = Object.keys(MAP_NAMES) as TableRole[];

/** The address family of a set of tables: the IPv6 twins have the same roles and JS shapes. */
export type TableFamily = 'IPv4' | 'IPv6';

/**
 * Pinned map name of each role of the IPv6 tables (bpf/lib/maps6.h). Service names, counters and
 * drop counters are one set of maps for both families.
 */
export const MAP_NAMES6: Readonly<Record<TableRole, string>> = {
  ...MAP_NAMES,
  frontends: 'sl_frontends6',
  backends: 'sl_backends6',
  ct: 'sl_ct6',
  affinity: 'sl_affinity6',
  sockRevnat: 'sl_sock_revnat6',
  vips: 'sl_vips6',
};

export function mapNamesOf(family: TableFamily): Readonly<Record<TableRole, string>> {
  return family === 'IPv6' ? MAP_NAMES6 : MAP_NAMES;
}

/** An error shaped like the addon's (code, errno, call), for implementations that are not the kernel. */
export interface MapError extends Error {
  code: string;
  call: string;
}

export function mapError(map: string, call: string, code: string, detail = ''): MapError {
  const err = new Error(`${call}(${map}): ${code}${detail ? ` (${detail})` : ''}`) as MapError;
  err.code = code;
  err.call = call;
  return err;
}

/** The errno name of a map error, when it has one. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
