// The writer's copy of what the service maps hold: frontends, backend blocks and service names.
// Read from the pinned maps at start (so a restarted agent re-adopts ids and blocks) and on
// resync; afterwards kept in step with every successful write, so a diff never reads the kernel.
import type { BackendValue4, FrontendKey4, ServiceValue, VipValue } from '../bpf/sluice-structs.js';
import { SetIndex } from '../model/set-index.js';
import { ipv4FromNumber, ipv4TextToNumber } from '../bpf/ip-bytes.js';
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
 * One backend block's entries by ordinal, packed: three numbers per ordinal (the address, port and
 * flags, the node address) in one array indexed by ordinal. Objects per entry and a Map per block
 * cost ~10 MB at 12,700 service ports × 10 backends; this ~4 MB. Values are rebuilt on read
 * (get, entries) and compared without rebuilding (matches). An entry that does not pack (a far
 * ordinal, only a stray one read from the maps can have one: the writer deletes it; or a value out
 * of range) is kept as it is in a Map beside.
 */
export class BlockEntries {
  /** [addr, port | flags << 16, node_addr] per ordinal; addr -1: no entry. */
  private readonly packed: number[] = [];
  private odd: Map<number, BackendValue4> | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(ordinal: number): BackendValue4 | undefined {
    const kept = this.odd?.get(ordinal);
    if (kept) return kept;
    const i = ordinal * 3;
    const addr = this.packed[i];
    if (addr === undefined || addr < 0) return undefined;
    const portFlags = this.packed[i + 1] as number;
    return { addr: ipv4FromNumber(addr), port: portFlags & 0xffff, flags: portFlags >>> 16, node_addr: ipv4FromNumber(this.packed[i + 2] as number) };
  }

  /** True when the entry at `ordinal` equals `value` (sameBackend), without rebuilding it. */
  matches(ordinal: number, value: BackendValue4): boolean {
    const kept = this.odd?.get(ordinal);
    if (kept) return sameBackend(kept, value);
    const i = ordinal * 3;
    const addr = this.packed[i];
    if (addr === undefined || addr < 0) return false;
    return addr === ipv4TextToNumber(value.addr) && this.packed[i + 1] === packPortFlags(value) && this.packed[i + 2] === ipv4TextToNumber(value.node_addr);
  }

  set(ordinal: number, value: BackendValue4): void {
    if (this.has(ordinal)) this.delete(ordinal);
    this.count++;
    const addr = ipv4TextToNumber(value.addr);
    const nodeAddr = ipv4TextToNumber(value.node_addr);
    const portFlags = packPortFlags(value);
    if (ordinal >= DENSE_ORDINALS || addr === undefined || nodeAddr === undefined || portFlags === undefined) {
      (this.odd ??= new Map()).set(ordinal, value);
      return;
    }
    const i = ordinal * 3;
    while (this.packed.length < i) this.packed.push(-1, 0, 0);
    this.packed[i] = addr;
    this.packed[i + 1] = portFlags;
    this.packed[i + 2] = nodeAddr;
  }

  delete(ordinal: number): void {
    if (!this.has(ordinal)) return;
    this.count--;
    if (this.odd?.delete(ordinal)) return;
    this.packed[ordinal * 3] = -1;
    while (this.packed.length > 0 && (this.packed[this.packed.length - 3] as number) < 0) this.packed.length -= 3;
  }

  /** Ordinals present, ascending. */
  keys(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.packed.length; i += 3) if ((this.packed[i] as number) >= 0) out.push(i / 3);
    if (this.odd) out.push(...this.odd.keys());
    return this.odd ? out.sort((a, b) => a - b) : out;
  }

  /** [ordinal, value] of the entries present, ascending. */
  entries(): Array<[number, BackendValue4]> {
    return this.keys().map((o) => [o, this.get(o) as BackendValue4]);
  }

  private has(ordinal: number): boolean {
    if (this.odd?.has(ordinal)) return true;
    const addr = this.packed[ordinal * 3];
    return addr !== undefined && addr >= 0;
  }
}

function packPortFlags(v: BackendValue4): number | undefined {
  const { port, flags } = v;
  if (!Number.isInteger(port) || port < 0 || port > 0xffff || !Number.isInteger(flags) || flags < 0 || flags > 0xff) return undefined;
  return port | (flags << 16);
}

/** Ordinals below this sit in BlockEntries' array (far above any block the writer builds). */
const DENSE_ORDINALS = 1 << 16;

/**
 * group (a svc_id, a backend_id) → its frontends. Nearly every group has one frontend (a
 * ClusterIP-only service port): it is stored bare, and a Map only from the second one on.
 */
class FrontendGroups {
  private readonly map = new Map<number, MirrorFrontend | Map<string, MirrorFrontend>>();

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
  readonly blocks = new Map<number, BlockEntries>();
  /** svc_id → service-port key (sl_svc_meta). Written through setName/deleteName only. */
  readonly names = new Map<number, string>();
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
    let used = 0;
    for (const { value } of this.byBlock.frontends(backendId)) used = Math.max(used, value.count + value.local_count);
    return used;
  }

  setBackend(backendId: number, ordinal: number, value: BackendValue4): void {
    let block = this.blocks.get(backendId);
    if (!block) this.blocks.set(backendId, (block = new BlockEntries()));
    block.set(ordinal, value);
  }

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

  /** True when the block holds exactly-equal values at ordinals [0, values.length) (sameBackend each). */
  blockMatches(backendId: number, values: readonly BackendValue4[]): boolean {
    if (values.length === 0) return true;
    const block = this.blocks.get(backendId);
    return block !== undefined && values.every((v, i) => block.matches(i, v));
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
