// The map sizes a user sets (sluice-agent --map-size-* flags, docs/agent.md), named for what the
// maps hold, and which pinned maps each one sizes. The maps behind them are the sizable ones of
// table-specs.ts. One knob per role sizes both families' maps where their memory follows their
// use (hash maps without preallocation; the svc_id arrays, one space for both families); the
// conntrack-like LRU maps preallocate every slot, so each family has its own knob and an unused
// family costs only what its own knob says. docs/dataplane.md ("Map sizes") says what each
// entry costs.
import { MAGLEV, MAP_CAPACITY, MAP_CAPACITY6 } from '../bpf/sluice-structs.js';

export type MapSizeName =
  | 'frontends' | 'backends' | 'service-ids' | 'cluster-ips' | 'maglev-chunks'
  | 'conntrack' | 'conntrack6' | 'affinity' | 'affinity6' | 'socket-revnat' | 'socket-revnat6';

export interface MapSizeOption {
  name: MapSizeName;
  /** The pinned maps this size applies to (all given the same max_entries). */
  maps: readonly string[];
  /** The compiled capacity, kept when the option is not set. */
  defaultSize: number;
  /** The least size that makes sense (svc_id 0 is reserved: two slots hold one service port). */
  min: number;
  /** What one entry is, for --help and errors. */
  holds: string;
}

/** Sizes above this are refused as typos (a 16M-slot conntrack map already preallocates ~2 GB). */
export const MAP_SIZE_MAX = 1 << 24;

export const MAP_SIZE_OPTIONS: readonly MapSizeOption[] = [
  { name: 'frontends', maps: ['sl_frontends4', 'sl_frontends6'], defaultSize: MAP_CAPACITY.FRONTENDS, min: 1, holds: 'one per frontend (Service port x ClusterIP, NodePort address, external or load-balancer IP), per IP family' },
  { name: 'backends', maps: ['sl_backends4', 'sl_backends6'], defaultSize: MAP_CAPACITY.BACKENDS, min: 1, holds: 'one per backend slot of every Service port (its ready endpoints, plus the node-local ones again when it has any), per IP family; a block being replaced counts twice during the switch' },
  { name: 'service-ids', maps: ['sl_svc_meta', 'sl_svc_counters'], defaultSize: MAP_CAPACITY.SVC_IDS, min: 2, holds: 'one svc_id per Service port and IP family, both families together; id 0 is reserved' },
  { name: 'cluster-ips', maps: ['sl_vips4', 'sl_vips6'], defaultSize: MAP_CAPACITY.VIPS, min: 1, holds: 'one per ClusterIP address, per IP family' },
  { name: 'maglev-chunks', maps: ['sl_maglev4'], defaultSize: MAP_CAPACITY.MAGLEV_CHUNKS, min: 1, holds: `chunks of the external Services' Maglev tables: ceil(--maglev-table-size / ${MAGLEV.CHUNK}) per external Service port` },
  { name: 'conntrack', maps: ['sl_ct4'], defaultSize: MAP_CAPACITY.CT, min: 1, holds: 'two per IPv4 flow translated on the TC path (LRU: the oldest flows are evicted when full)' },
  { name: 'conntrack6', maps: ['sl_ct6'], defaultSize: MAP_CAPACITY6.CT6, min: 1, holds: 'two per IPv6 flow translated on the TC path (LRU)' },
  { name: 'affinity', maps: ['sl_affinity4'], defaultSize: MAP_CAPACITY.AFFINITY, min: 1, holds: 'one per (Service port, IPv4 client) with ClientIP session affinity (LRU)' },
  { name: 'affinity6', maps: ['sl_affinity6'], defaultSize: MAP_CAPACITY6.AFFINITY6, min: 1, holds: 'one per (Service port, IPv6 client) with ClientIP session affinity (LRU)' },
  { name: 'socket-revnat', maps: ['sl_sock_revnat4'], defaultSize: MAP_CAPACITY.SOCK_REVNAT, min: 1, holds: 'one per IPv4 socket balanced at connect time (LRU)' },
  { name: 'socket-revnat6', maps: ['sl_sock_revnat6'], defaultSize: MAP_CAPACITY6.SOCK_REVNAT6, min: 1, holds: 'one per IPv6 socket balanced at connect time (LRU)' },
];

/** The flag of a size option. */
export function mapSizeFlag(name: MapSizeName): string {
  return `--map-size-${name}`;
}

/** The environment variable of a size option. */
export function mapSizeEnv(name: MapSizeName): string {
  return `SLUICE_MAP_SIZE_${name.replace(/-/g, '_').toUpperCase()}`;
}

/** The option that sizes a map, by the map's name (undefined for a map no option sizes). */
export function mapSizeOptionOf(map: string): MapSizeOption | undefined {
  return MAP_SIZE_OPTIONS.find((o) => o.maps.includes(map));
}

/** "--map-size-frontends" for sl_frontends4: how a message tells the user which knob to turn. */
export function mapSizeFlagOf(map: string): string | undefined {
  const option = mapSizeOptionOf(map);
  return option ? mapSizeFlag(option.name) : undefined;
}

/** The Datapath's maxEntries for the options set (the others keep the compiled capacities). */
export function maxEntriesOf(sizes: Readonly<Partial<Record<MapSizeName, number>>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const option of MAP_SIZE_OPTIONS) {
    const size = sizes[option.name];
    if (size !== undefined) for (const map of option.maps) out[map] = size;
  }
  return out;
}
