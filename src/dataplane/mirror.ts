// The writer's copy of what the service maps hold: frontends, backend blocks and service names.
// Read from the pinned maps at start (so a restarted agent re-adopts ids and blocks) and on
// resync; afterwards kept in step with every successful write, so a diff never reads the kernel.
import type { BackendValue4, FrontendKey4, ServiceValue, SvcMeta, VipValue } from '../bpf/sluice-structs.js';
import type { FlatText } from '../model/flat-text.js';
import { MultiIndex } from '../model/one-or-many.js';
import { DenseIdStore, type SlotCodec } from './dense-ids.js';
import { IdMap } from './id-map.js';
import { frontendId, sameBackend } from './service-target.js';
import type { ServiceTables } from './tables.js';

export interface MirrorFrontend {
  /** frontendId(key). */
  id: FlatText;
  key: FrontendKey4;
  value: ServiceValue;
}

/** A programmed service port as found in the maps. */
export interface ProgrammedService {
  key: string;
  svcId: number;
  /** Its frontends (by frontendId). */
  frontends: Map<FlatText, MirrorFrontend>;
}

/**
 * One backend block's entries by ordinal, on the dense-id store (dense-ids.ts): ordinals the writer
 * uses run 0..n-1, so they index an array instead of a Map (a Map per block cost ~500 bytes at 10
 * entries, 6 MB at 12,700 service ports), packed three slots per ordinal — addr, port | flags <<
 * 16, node_addr — not a value object each (56 bytes plus its slot; 131,500 of them were 8.4 MB).
 * get() builds a new object each call. An entry far beyond (only a stray one read from the maps
 * can be: the writer deletes it) goes to a Map.
 */
export class BlockEntries extends DenseIdStore<BackendValue4> {
  protected get codec(): SlotCodec<BackendValue4> {
    return PACKED_BACKEND;
  }

  protected get denseLimit(): number {
    return DENSE_ORDINALS;
  }

  protected override sameValue(a: BackendValue4, b: BackendValue4): boolean {
    return sameBackend(a, b);
  }

  /** Ordinals present, ascending. */
  keys(): number[] {
    return this.idsFrom(0);
  }

  /** Ordinals present from `first` on, ascending: what cleanup deletes beyond the part in use. */
  ordinalsFrom(first: number): number[] {
    return this.idsFrom(first);
  }

  /** [ordinal, value] of the entries present, ascending. */
  entries(): Array<[number, BackendValue4]> {
    return [...this];
  }
}

const packPortFlags = (v: BackendValue4): number => v.port | (v.flags << 16);

/** A backend value in three slots: addr, port | flags << 16, node_addr. */
const PACKED_BACKEND: SlotCodec<BackendValue4> = {
  width: 3,
  write(slots, at, v) {
    slots[at] = v.addr;
    slots[at + 1] = packPortFlags(v);
    slots[at + 2] = v.node_addr;
  },
  read(slots, at) {
    const portFlags = slots[at + 1] as number;
    return { addr: slots[at] as string, port: portFlags & 0xffff, flags: portFlags >>> 16, node_addr: slots[at + 2] as string };
  },
  equals: (slots, at, v) => slots[at] === v.addr && slots[at + 1] === packPortFlags(v) && slots[at + 2] === v.node_addr,
};

/** Ordinals below this sit in BlockEntries' array (far above any block the writer builds). */
const DENSE_ORDINALS = 1 << 16;

/** group (a svc_id, a backend_id) → its frontends: nearly every group has one (a ClusterIP-only port). */
const frontendGroups = () => new MultiIndex<number, MirrorFrontend>({ store: new IdMap(), same: (a, b) => a.id === b.id });

/** How an IPv6 service-port key ends (src/model/desired-port.ts, servicePortKey). */
export const IPV6_KEY_SUFFIX = '/IPv6';

/** Key given to a svc_id that frontends use but sl_svc_meta does not name (it gets removed). */
export const unnamedKey = (svcId: number): string => `#unnamed-svc-${svcId}`;

export class Mirror {
  readonly frontends = new Map<FlatText, MirrorFrontend>();
  /** backend_id → ordinal → value. */
  readonly blocks = new IdMap<BlockEntries>();
  /** svc_id → service-port key (sl_svc_meta). Written through setName/deleteName only. */
  readonly names = new IdMap<string>();
  /** ClusterIP → its sl_vips4 value. */
  readonly vips = new Map<string, VipValue>();
  // Indexes, so an apply of a few service ports never scans every frontend:
  /** service-port key → the svc_ids naming it. */
  private readonly idsByName = new MultiIndex<string, number>();
  /** svc_id → its frontends. */
  private readonly bySvcId = frontendGroups();
  /** backend_id → the frontends that read it (count + local_count ordinals each). */
  private readonly byBlock = frontendGroups();

  /**
   * `family`: whose names to take from sl_svc_meta, which both families share: the IPv6 mirror
   * takes the keys ending in /IPv6, the IPv4 one every other (so it removes stray names as before).
   * `names`: sl_svc_meta's entries when the caller read them already (for both families at once).
   */
  static read(tables: ServiceTables, family: 'IPv4' | 'IPv6' = 'IPv4', names: ReadonlyArray<readonly [number, SvcMeta]> = tables.svcMeta.entries()): Mirror {
    const m = new Mirror();
    for (const [key, value] of tables.frontends.entries()) m.setFrontend(key, value);
    for (const [key, value] of tables.backends.entries()) m.setBackend(key.backend_id, key.ordinal, value);
    for (const [svcId, meta] of names) {
      if (meta.name !== '' && meta.name.endsWith(IPV6_KEY_SUFFIX) === (family === 'IPv6')) m.setName(svcId, meta.name);
    }
    for (const [key, value] of tables.vips.entries()) m.vips.set(key.addr, value);
    m.trimBlocks();
    return m;
  }

  setFrontend(key: FrontendKey4, value: ServiceValue): void {
    const id = frontendId(key);
    this.unindex(id);
    const fe = { id, key, value };
    this.frontends.set(id, fe);
    this.bySvcId.add(value.svc_id, fe);
    this.byBlock.add(value.backend_id, fe);
  }

  deleteFrontend(key: FrontendKey4): void {
    const id = frontendId(key);
    this.unindex(id);
    this.frontends.delete(id);
  }

  private unindex(id: FlatText): void {
    const prev = this.frontends.get(id);
    if (!prev) return;
    this.bySvcId.delete(prev.value.svc_id, prev);
    this.byBlock.delete(prev.value.backend_id, prev);
  }

  setName(svcId: number, key: string): void {
    this.deleteName(svcId);
    this.names.set(svcId, key);
    this.idsByName.add(key, svcId);
  }

  deleteName(svcId: number): void {
    const key = this.names.get(svcId);
    if (key === undefined) return;
    this.names.delete(svcId);
    this.idsByName.delete(key, svcId);
  }

  /** True while some frontend names svc_id. */
  svcIdInUse(svcId: number): boolean {
    return this.bySvcId.has(svcId);
  }

  /** The programmed service port `key` as services() would give it, without building them all. */
  service(key: string): ProgrammedService | undefined {
    const ids = this.idsByName.values(key);
    if (ids.length === 0) return undefined;
    const svcId = Math.min(...ids);
    return { key, svcId, frontends: new Map(this.bySvcId.values(svcId).map((fe) => [fe.id, fe])) };
  }

  /** Ordinals of backend_id that frontends read (0: no frontend points at it). */
  blockUse(backendId: number): number {
    let used = 0;
    for (const { value } of this.byBlock.values(backendId)) used = Math.max(used, value.count + value.local_count);
    return used;
  }

  setBackend(backendId: number, ordinal: number, value: BackendValue4): void {
    let block = this.blocks.get(backendId);
    if (!block) this.blocks.set(backendId, (block = new BlockEntries()));
    block.set(ordinal, value);
    this.untrimmed.add(block);
  }

  /** Trims the blocks set since the last call (see BlockEntries.trim); the writer calls it after each apply. */
  trimBlocks(): void {
    for (const block of this.untrimmed) block.trim();
    this.untrimmed.clear();
  }

  /** Blocks with entries set since trimBlocks(). */
  private readonly untrimmed = new Set<BlockEntries>();

  deleteBackend(backendId: number, ordinal: number): void {
    const block = this.blocks.get(backendId);
    if (!block) return;
    block.delete(ordinal);
    if (block.size === 0) this.blocks.delete(backendId);
  }

  /**
   * The programmed services by key. A svc_id named twice keeps the lowest id under its name (the
   * other is treated as unnamed, hence removed); frontends of an unnamed svc_id form a service
   * under unnamedKey(), so the next apply removes them like any other service.
   */
  services(): Map<string, ProgrammedService> {
    const byId = new Map<number, ProgrammedService>();
    const byKey = new Map<string, ProgrammedService>();
    for (const [svcId, key] of [...this.names].sort((a, b) => a[0] - b[0])) {
      if (byKey.has(key)) continue;
      const svc = { key, svcId, frontends: new Map<FlatText, MirrorFrontend>() };
      byId.set(svcId, svc);
      byKey.set(key, svc);
    }
    for (const [id, fe] of this.frontends) {
      const svcId = fe.value.svc_id;
      let svc = byId.get(svcId);
      if (!svc) {
        svc = { key: unnamedKey(svcId), svcId, frontends: new Map() };
        byId.set(svcId, svc);
        byKey.set(svc.key, svc);
      }
      svc.frontends.set(id, fe);
    }
    return byKey;
  }

  /** Whether the block holds exactly `values` at ordinals [0, values.length) (what lies beyond is not read). */
  blockStartsWith(backendId: number, values: readonly BackendValue4[]): boolean {
    if (values.length === 0) return true;
    const block = this.blocks.get(backendId);
    if (!block) return false;
    for (let i = 0; i < values.length; i++) if (!block.equals(i, values[i] as BackendValue4)) return false;
    return true;
  }

  /** For each backend_id some frontend points at, the number of ordinals the frontends read. */
  referencedBlocks(): Map<number, number> {
    const refs = new Map<number, number>();
    for (const backendId of this.byBlock.keys()) refs.set(backendId, this.blockUse(backendId));
    return refs;
  }

  /** Every svc_id in use (named or referenced by a frontend). */
  serviceIds(): Set<number> {
    const ids = new Set(this.names.keys());
    for (const { value } of this.frontends.values()) ids.add(value.svc_id);
    return ids;
  }

  /** Every backend_id in use (holding entries or referenced). */
  backendIds(): Set<number> {
    const ids = new Set(this.blocks.keys());
    for (const { value } of this.frontends.values()) ids.add(value.backend_id);
    return ids;
  }
}
