// The writer's copy of what the service maps hold: frontends, backend blocks and service names.
// Read from the pinned maps at start (so a restarted agent re-adopts ids and blocks) and on
// resync; afterwards kept in step with every successful write, so a diff never reads the kernel.
import type { BackendValue4, FrontendKey4, ServiceValue, VipValue } from '../bpf/sluice-structs.js';
import { SetIndex } from '../model/set-index.js';
import { IdMap } from './id-map.js';
import { frontendId, sameBackend } from './service-target.js';
import type { ServiceTables } from './tables.js';

export interface MirrorFrontend {
  /** frontendId(key). */
  id: string;
  key: FrontendKey4;
  value: ServiceValue;
}

/** A programmed service port as found in the maps. */
export interface ProgrammedService {
  key: string;
  svcId: number;
  /** Its frontends (by frontendId). */
  frontends: Map<string, MirrorFrontend>;
}

/**
 * One backend block's entries by ordinal. Ordinals the writer uses run 0..n-1, so those sit in an
 * array indexed by ordinal instead of a Map (a Map per block cost ~500 bytes at 10 entries, 6 MB
 * at 12,700 service ports), and packed: three slots per ordinal — addr, port | flags << 16,
 * node_addr — not a value object each (56 bytes plus its slot; 131,500 of them were 8.4 MB).
 * A missing entry has an undefined addr. An entry far beyond (only a stray one read from the
 * maps can be: the writer deletes it) goes to a Map, so the array stays dense.
 */
export class BlockEntries {
  private slots: Array<string | number | undefined> = [];
  private far: Map<number, BackendValue4> | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(ordinal: number): boolean {
    return ordinal < DENSE_ORDINALS ? this.slots[ordinal * SLOTS] !== undefined : (this.far?.has(ordinal) ?? false);
  }

  /** A new object each call (the entries are packed). */
  get(ordinal: number): BackendValue4 | undefined {
    if (ordinal >= DENSE_ORDINALS) return this.far?.get(ordinal);
    const at = ordinal * SLOTS;
    const addr = this.slots[at] as string | undefined;
    if (addr === undefined) return undefined;
    const portFlags = this.slots[at + 1] as number;
    return { addr, port: portFlags & 0xffff, flags: portFlags >>> 16, node_addr: this.slots[at + 2] as string };
  }

  /** Whether the entry at `ordinal` equals `value` (no object built). */
  equals(ordinal: number, value: BackendValue4): boolean {
    if (ordinal >= DENSE_ORDINALS) {
      const v = this.far?.get(ordinal);
      return v !== undefined && sameBackend(v, value);
    }
    const at = ordinal * SLOTS;
    return this.slots[at] === value.addr && this.slots[at + 1] === packPortFlags(value) && this.slots[at + 2] === value.node_addr;
  }

  set(ordinal: number, value: BackendValue4): void {
    if (!this.has(ordinal)) this.count++;
    if (ordinal >= DENSE_ORDINALS) {
      (this.far ??= new Map()).set(ordinal, value);
      return;
    }
    const at = ordinal * SLOTS;
    this.slots[at] = value.addr;
    this.slots[at + 1] = packPortFlags(value);
    this.slots[at + 2] = value.node_addr;
  }

  delete(ordinal: number): void {
    if (!this.has(ordinal)) return;
    this.count--;
    if (ordinal >= DENSE_ORDINALS) {
      this.far?.delete(ordinal);
      return;
    }
    this.slots.fill(undefined, ordinal * SLOTS, ordinal * SLOTS + SLOTS);
    let end = this.slots.length;
    while (end > 0 && this.slots[end - SLOTS] === undefined) end -= SLOTS;
    if (end < this.slots.length) this.slots = this.slots.slice(0, end);
  }

  /** Drops the spare room the array grew with while entries were set one by one. */
  trim(): void {
    this.slots = this.slots.slice();
  }

  /** Ordinals present, ascending. */
  keys(): number[] {
    return this.ordinalsFrom(0);
  }

  /** Ordinals present from `first` on, ascending: what cleanup deletes beyond the part in use. */
  ordinalsFrom(first: number): number[] {
    const out: number[] = [];
    const dense = this.slots.length / SLOTS;
    for (let i = Math.max(0, first); i < dense; i++) if (this.slots[i * SLOTS] !== undefined) out.push(i);
    if (this.far) out.push(...[...this.far.keys()].filter((o) => o >= first).sort((a, b) => a - b));
    return out;
  }

  /** [ordinal, value] of the entries present, ascending. */
  entries(): Array<[number, BackendValue4]> {
    return this.keys().map((o) => [o, this.get(o) as BackendValue4]);
  }
}

/** Slots per ordinal in BlockEntries' array. */
const SLOTS = 3;
const packPortFlags = (v: BackendValue4): number => v.port | (v.flags << 16);

/** Ordinals below this sit in BlockEntries' array (far above any block the writer builds). */
const DENSE_ORDINALS = 1 << 16;

/**
 * group (a svc_id, a backend_id) → its frontends. Nearly every group has one frontend (a
 * ClusterIP-only service port): it is stored bare, and a Map only from the second one on.
 */
class FrontendGroups {
  private readonly map = new IdMap<MirrorFrontend | Map<string, MirrorFrontend>>();

  add(group: number, fe: MirrorFrontend): void {
    const current = this.map.get(group);
    if (current === undefined || (!(current instanceof Map) && current.id === fe.id)) this.map.set(group, fe);
    else if (current instanceof Map) current.set(fe.id, fe);
    else this.map.set(group, new Map([[current.id, current], [fe.id, fe]]));
  }

  delete(group: number, id: string): void {
    const current = this.map.get(group);
    if (current === undefined) return;
    if (!(current instanceof Map)) {
      if (current.id === id) this.map.delete(group);
      return;
    }
    current.delete(id);
    if (current.size === 1) this.map.set(group, current.values().next().value as MirrorFrontend);
  }

  has(group: number): boolean {
    return this.map.has(group);
  }

  /** The largest count + local_count among the group's frontends (0 without any); no array built. */
  maxUse(group: number): number {
    const current = this.map.get(group);
    if (current === undefined) return 0;
    if (!(current instanceof Map)) return current.value.count + current.value.local_count;
    let used = 0;
    for (const { value } of current.values()) used = Math.max(used, value.count + value.local_count);
    return used;
  }

  frontends(group: number): MirrorFrontend[] {
    const current = this.map.get(group);
    return current === undefined ? [] : current instanceof Map ? [...current.values()] : [current];
  }

  keys(): IterableIterator<number> {
    return this.map.keys();
  }
}

/** Key given to a svc_id that frontends use but sl_svc_meta does not name (it gets removed). */
export const unnamedKey = (svcId: number): string => `#unnamed-svc-${svcId}`;

export class Mirror {
  readonly frontends = new Map<string, MirrorFrontend>();
  /** backend_id → ordinal → value. */
  readonly blocks = new IdMap<BlockEntries>();
  /** svc_id → service-port key (sl_svc_meta). Written through setName/deleteName only. */
  readonly names = new IdMap<string>();
  /** ClusterIP → its sl_vips4 value. */
  readonly vips = new Map<string, VipValue>();
  // Indexes, so an apply of a few service ports never scans every frontend:
  /** service-port key → the svc_ids naming it. */
  private readonly idsByName = new SetIndex<string, number>();
  /** svc_id → its frontends. */
  private readonly bySvcId = new FrontendGroups();
  /** backend_id → the frontends that read it (count + local_count ordinals each). */
  private readonly byBlock = new FrontendGroups();

  static read(tables: ServiceTables): Mirror {
    const m = new Mirror();
    for (const [key, value] of tables.frontends.entries()) m.setFrontend(key, value);
    for (const [key, value] of tables.backends.entries()) m.setBackend(key.backend_id, key.ordinal, value);
    for (const [svcId, meta] of tables.svcMeta.entries()) if (meta.name !== '') m.setName(svcId, meta.name);
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

  private unindex(id: string): void {
    const prev = this.frontends.get(id);
    if (!prev) return;
    this.bySvcId.delete(prev.value.svc_id, id);
    this.byBlock.delete(prev.value.backend_id, id);
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
    return { key, svcId, frontends: new Map(this.bySvcId.frontends(svcId).map((fe) => [fe.id, fe])) };
  }

  /** Ordinals of backend_id that frontends read (0: no frontend points at it). */
  blockUse(backendId: number): number {
    return this.byBlock.maxUse(backendId);
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
      const svc = { key, svcId, frontends: new Map<string, MirrorFrontend>() };
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
