// The writer's copy of what the service maps hold: frontends, backend blocks and service names.
// Read from the pinned maps at start (so a restarted agent re-adopts ids and blocks) and on
// resync; afterwards kept in step with every successful write, so a diff never reads the kernel.
import type { BackendValue4, FrontendKey4, ServiceValue, VipValue } from '../bpf/sluice-structs.js';
import { frontendId } from './service-target.js';
import type { ServiceTables } from './tables.js';

export interface MirrorFrontend {
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

/** Key given to a svc_id that frontends use but sl_svc_meta does not name (it gets removed). */
export const unnamedKey = (svcId: number): string => `#unnamed-svc-${svcId}`;

export class Mirror {
  readonly frontends = new Map<string, MirrorFrontend>();
  /** backend_id → ordinal → value. */
  readonly blocks = new Map<number, Map<number, BackendValue4>>();
  /** svc_id → service-port key (sl_svc_meta). Written through setName/deleteName only. */
  readonly names = new Map<number, string>();
  /** ClusterIP → its sl_vips4 value. */
  readonly vips = new Map<string, VipValue>();
  // Indexes, so an apply of a few service ports never scans every frontend:
  /** service-port key → the svc_ids naming it. */
  private readonly idsByName = new Map<string, Set<number>>();
  /** svc_id → its frontends (by frontendId). */
  private readonly bySvcId = new Map<number, Map<string, MirrorFrontend>>();
  /** backend_id → frontendId → ordinals that frontend reads (count + local_count). */
  private readonly byBlock = new Map<number, Map<string, number>>();

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
    const fe = { key, value };
    this.frontends.set(id, fe);
    let ofSvc = this.bySvcId.get(value.svc_id);
    if (!ofSvc) this.bySvcId.set(value.svc_id, (ofSvc = new Map()));
    ofSvc.set(id, fe);
    let ofBlock = this.byBlock.get(value.backend_id);
    if (!ofBlock) this.byBlock.set(value.backend_id, (ofBlock = new Map()));
    ofBlock.set(id, value.count + value.local_count);
  }

  deleteFrontend(key: FrontendKey4): void {
    const id = frontendId(key);
    this.unindex(id);
    this.frontends.delete(id);
  }

  private unindex(id: string): void {
    const prev = this.frontends.get(id);
    if (!prev) return;
    const ofSvc = this.bySvcId.get(prev.value.svc_id);
    ofSvc?.delete(id);
    if (ofSvc?.size === 0) this.bySvcId.delete(prev.value.svc_id);
    const ofBlock = this.byBlock.get(prev.value.backend_id);
    ofBlock?.delete(id);
    if (ofBlock?.size === 0) this.byBlock.delete(prev.value.backend_id);
  }

  setName(svcId: number, key: string): void {
    this.deleteName(svcId);
    this.names.set(svcId, key);
    let ids = this.idsByName.get(key);
    if (!ids) this.idsByName.set(key, (ids = new Set()));
    ids.add(svcId);
  }

  deleteName(svcId: number): void {
    const key = this.names.get(svcId);
    if (key === undefined) return;
    this.names.delete(svcId);
    const ids = this.idsByName.get(key);
    ids?.delete(svcId);
    if (ids?.size === 0) this.idsByName.delete(key);
  }

  /** True while some frontend names svc_id. */
  svcIdInUse(svcId: number): boolean {
    return this.bySvcId.has(svcId);
  }

  /** The programmed service port `key` as services() would give it, without building them all. */
  service(key: string): ProgrammedService | undefined {
    const ids = this.idsByName.get(key);
    if (!ids || ids.size === 0) return undefined;
    const svcId = Math.min(...ids);
    return { key, svcId, frontends: new Map(this.bySvcId.get(svcId)) };
  }

  /** Ordinals of backend_id that frontends read (0: no frontend points at it). */
  blockUse(backendId: number): number {
    let used = 0;
    for (const n of this.byBlock.get(backendId)?.values() ?? []) used = Math.max(used, n);
    return used;
  }

  setBackend(backendId: number, ordinal: number, value: BackendValue4): void {
    let block = this.blocks.get(backendId);
    if (!block) this.blocks.set(backendId, (block = new Map()));
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

  /** The block's values at ordinals [0, n), or null when any of them is missing. */
  blockPrefix(backendId: number, n: number): BackendValue4[] | null {
    if (n === 0) return [];
    const block = this.blocks.get(backendId);
    if (!block) return null;
    const out: BackendValue4[] = [];
    for (let i = 0; i < n; i++) {
      const v = block.get(i);
      if (!v) return null;
      out.push(v);
    }
    return out;
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
