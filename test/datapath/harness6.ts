// IPv6 additions to the packet-test harness (harness.ts): services in the IPv6 maps, sl_ct6
// lookups, and ICMPv6 error frames. Shared by the ipv6-*.test.ts files.
import {
  affinityKey6, affinityValue6, backendKey, backendValue6, ctKey6, ctValue6, frontendKey6, nodeConfig6, serviceValue, u32Key, vipKey6, vipValue,
} from '../../src/bpf/sluice-structs.js';
import { buildFrame6, ETH_HLEN, type Frame6Spec } from '../../src/packet/index.js';
import type { Datapath } from './harness.js';

export type CtValue6 = ReturnType<typeof ctValue6.decode>;
export type AffinityValue6 = ReturnType<typeof affinityValue6.decode>;

export interface Backend6 {
  addr: string;
  port: number;
  flags?: number;
  /** The endpoint's node (default ::, unknown). */
  nodeAddr?: string;
}

export interface Service6 {
  vip: string;
  port: number;
  proto: number;
  svcId: number;
  backendId: number;
  /** The Cluster set: ordinals [0, n). */
  cluster: Backend6[];
  /** The Local set: ordinals [cluster.length, ...). */
  local?: Backend6[];
  flags?: number;
  /** ClientIP affinity timeout (with SVC_F.AFFINITY in flags); 0 by default. */
  affinityTimeoutS?: number;
  /** List the VIP in sl_vips6 as a ClusterIP refusing unknown ports (default true). */
  clusterIp?: boolean;
}

/** Writes backends, then the frontend, then the VIP (the writer's order), in the IPv6 maps. */
export function addService6(dp: Datapath, s: Service6): void {
  const be = dp.obj.map('sl_backends6');
  const all = [...s.cluster, ...(s.local ?? [])];
  all.forEach((b, ordinal) => {
    be.update(backendKey.encode({ backend_id: s.backendId, ordinal }), backendValue6.encode({ addr: b.addr, port: b.port, flags: b.flags ?? 0, node_addr: b.nodeAddr ?? '::' }));
  });
  dp.obj.map('sl_frontends6').update(frontendKey6.encode({ addr: s.vip, port: s.port, proto: s.proto, scope: 0 }), serviceValue.encode({
    svc_id: s.svcId, backend_id: all.length ? s.backendId : 0, count: s.cluster.length, local_count: s.local?.length ?? 0, flags: s.flags ?? 0, affinity_timeout_s: s.affinityTimeoutS ?? 0,
  }));
  if (s.clusterIp ?? true) dp.obj.map('sl_vips6').update(vipKey6.encode({ addr: s.vip }), vipValue.encode({ flags: 1 }));
}

/** sl_node_config6: the IPv6 SNAT address and port range. */
export function setNodeConfig6(dp: Datapath, snatAddr: string, portMin: number, portMax: number): void {
  dp.obj.map('sl_node_config6').update(u32Key.encode(0), nodeConfig6.encode({ snat_addr: snatAddr, snat_port_min: portMin, snat_port_max: portMax }));
}

/** The sl_ct6 entry of a tuple, or null. */
export function ct6(dp: Datapath, saddr: string, daddr: string, sport: number, dport: number, proto: number): CtValue6 | null {
  const v = dp.obj.map('sl_ct6').lookup(ctKey6.encode({ saddr, daddr, sport, dport, proto }));
  return v ? ctValue6.decode(v) : null;
}

export function setCt6(dp: Datapath, saddr: string, daddr: string, sport: number, dport: number, proto: number, value: CtValue6): void {
  dp.obj.map('sl_ct6').update(ctKey6.encode({ saddr, daddr, sport, dport, proto }), ctValue6.encode(value));
}

/** The sl_affinity6 entry of a service's client, or null. */
export function affinity6(dp: Datapath, svcId: number, client: string): AffinityValue6 | null {
  const v = dp.obj.map('sl_affinity6').lookup(affinityKey6.encode({ svc_id: svcId, client_addr: client }));
  return v ? affinityValue6.decode(v) : null;
}

export function setAffinity6(dp: Datapath, svcId: number, client: string, value: AffinityValue6): void {
  dp.obj.map('sl_affinity6').update(affinityKey6.encode({ svc_id: svcId, client_addr: client }), affinityValue6.encode(value));
}

/** The IPv6 packet (no Ethernet header) of a frame spec: what an ICMPv6 error quotes. */
export const ipv6Packet = (spec: Frame6Spec): Buffer => buildFrame6(spec).subarray(ETH_HLEN);

export const ICMP6 = { DEST_UNREACH: 1, PKT_TOOBIG: 2, TIME_EXCEEDED: 3, PORT_UNREACH: 4 } as const;

/**
 * An ICMPv6 error frame from src to dst quoting `quoted`, its 4-byte field after the checksum
 * `rest` (Packet Too Big's MTU), the ICMPv6 checksum computed from scratch; `macs` may also set
 * the outer hop limit (an error sent on as a router would, one hop less).
 */
export function icmp6Error(src: string, dst: string, quoted: Buffer, type: number, code: number, rest = 0, macs: Pick<Frame6Spec, 'srcMac' | 'dstMac' | 'hopLimit'> = {}): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(rest);
  return buildFrame6({ src, dst, ...macs, icmp6: { type, code }, payload: Buffer.concat([head, quoted]) });
}
