// A stand-in for the dataplane's service-table writer (src/dataplane, not landed yet), with the
// same entry point `apply(desired)` and the same update order, so the traffic tests can switch
// to the real writer by changing one import. Deliberately small: full diffing, id adoption and
// batching are the real writer's job.
//
// Order per changed service: the new backend block is written completely under a fresh
// backend_id, then the frontends switch to it in one update each, then the old block goes.
// Removed UDP backends lose their conntrack and socket reverse-NAT entries at once.
import type { NativeMap } from '../../src/bpf/native.js';
import {
  backendKey, backendValue4, ctKey4, ctValue4, frontendKey4, IPPROTO, serviceValue, sockRevnatKey4, SVC_F,
} from '../../src/bpf/sluice-structs.js';
import type { Backend, DesiredServicePort, DesiredState } from '../../src/model/types.js';

export interface ServiceMaps {
  frontends: NativeMap;
  backends: NativeMap;
  ct: NativeMap;
  sockRevnat: NativeMap;
}

interface Programmed {
  svcId: number;
  backendId: number;
  /** Cluster set then Local set, as written to the block. */
  slots: Backend[];
  frontendKeys: Buffer[];
  protocol: number;
}

const beKey = (b: Backend) => `${b.ip}:${b.port}`;

export class InterimServiceWriter {
  private readonly programmed = new Map<string, Programmed>();
  private nextSvcId = 1;
  private nextBackendId = 1;

  constructor(private readonly maps: ServiceMaps) {}

  async apply(desired: DesiredState): Promise<void> {
    for (const svc of desired.services.values()) this.applyService(svc);
    for (const [key, p] of this.programmed) {
      if (desired.services.has(key)) continue;
      for (const fk of p.frontendKeys) this.maps.frontends.delete(fk);
      this.deleteBlock(p.backendId, p.slots.length);
      this.flushBackends(p.protocol, p.slots);
      this.programmed.delete(key);
    }
  }

  private applyService(svc: DesiredServicePort): void {
    const protocol = IPPROTO[svc.protocol];
    const slots = [...svc.clusterBackends, ...svc.localBackends];
    const old = this.programmed.get(svc.key);
    const backendId = this.nextBackendId++;
    slots.forEach((b, ordinal) => {
      this.maps.backends.update(
        backendKey.encode({ backend_id: backendId, ordinal }),
        backendValue4.encode({ addr: b.ip, port: b.port, flags: b.local ? 1 : 0, node_addr: '0.0.0.0' }),
      );
    });
    const svcId = old?.svcId ?? this.nextSvcId++;
    const value = serviceValue.encode({
      svc_id: svcId,
      backend_id: backendId,
      count: svc.clusterBackends.length,
      local_count: svc.localBackends.length,
      flags: (svc.internalLocal ? SVC_F.INTERNAL_LOCAL : 0) | (svc.affinityTimeoutSec ? SVC_F.AFFINITY : 0),
      affinity_timeout_s: svc.affinityTimeoutSec,
    });
    const frontendKeys = svc.frontends.map((f) =>
      frontendKey4.encode({ addr: f.ip, port: f.port, proto: protocol, scope: 0 }));
    for (const fk of frontendKeys) this.maps.frontends.update(fk, value);
    if (old) {
      for (const fk of old.frontendKeys) {
        if (!frontendKeys.some((k) => k.equals(fk))) this.maps.frontends.delete(fk);
      }
      this.deleteBlock(old.backendId, old.slots.length);
      const kept = new Set(slots.map(beKey));
      this.flushBackends(protocol, old.slots.filter((b) => !kept.has(beKey(b))));
    }
    this.programmed.set(svc.key, { svcId, backendId, slots, frontendKeys, protocol });
  }

  private deleteBlock(backendId: number, n: number): void {
    for (let ordinal = 0; ordinal < n; ordinal++) this.maps.backends.delete(backendKey.encode({ backend_id: backendId, ordinal }));
  }

  /** UDP only: conntrack (both directions) and socket reverse-NAT entries of removed backends. */
  private flushBackends(protocol: number, removed: Backend[]): void {
    if (protocol !== IPPROTO.UDP || removed.length === 0) return;
    const gone = new Set(removed.map(beKey));
    for (const k of this.maps.ct.keys()) {
      const key = ctKey4.decode(k);
      if (key.proto !== protocol) continue;
      const v = this.maps.ct.lookup(k);
      const ct = v ? ctValue4.decode(v) : undefined;
      const toward = ct && ct.type === 1 && gone.has(`${ct.nat_addr}:${ct.nat_port}`);
      const from = gone.has(`${key.saddr}:${key.sport}`);
      if (toward || from) this.maps.ct.delete(k);
    }
    for (const k of this.maps.sockRevnat.keys()) {
      const key = sockRevnatKey4.decode(k);
      if (gone.has(`${key.backend_addr}:${key.backend_port}`)) this.maps.sockRevnat.delete(k);
    }
  }
}
