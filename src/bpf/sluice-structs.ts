// Codecs for the structs in bpf/include/sluice.h. The header is the truth: `allStructCodecs`
// is verified against the compiled objects' BTF at load (src/bpf) and in tests.
import { be16, cstring, defineStruct, ipv4, ipv6, pad, scalar, u16, u16Array, u32, u64, u8 } from './codec.js';
import type { ConstantMirror } from './constants.js';
import { mirrorEnum } from './constants.js';

// Constants mirrored from sluice.h's enums, checked against every object's BTF at load
// (src/bpf/constants.ts) and in test/datapath/btf-contract.test.ts.
export const SCOPE_CONSTANTS = mirrorEnum('sl_scope', 'SL_SCOPE_', { ANY: 0 });
export const SVC_F_CONSTANTS = mirrorEnum('sl_svc_flags', 'SL_SVC_F_', {
  INTERNAL_LOCAL: 1 << 0,
  EXTERNAL_LOCAL: 1 << 1,
  AFFINITY: 1 << 2,
  EXTERNAL: 1 << 3,
  SRC_RANGES: 1 << 4,
  DSR: 1 << 5,
  MAGLEV: 1 << 6,
  /* sl_service_value.flags bits 8-9: the frontend's kind (enum sl_frontend_kind). */
  KIND_SHIFT: 8,
  KIND_MASK: 3 << 8,
});
export const FRONTEND_KIND_CONSTANTS = mirrorEnum('sl_frontend_kind', 'SL_KIND_', {
  CLUSTER_IP: 0, NODE_PORT: 1, EXTERNAL_IP: 2, LOAD_BALANCER: 3, MAX: 4,
});
export const BE_F_CONSTANTS = mirrorEnum('sl_be_flags', 'SL_BE_F_', { LOCAL: 1 << 0, TERMINATING: 1 << 1 });
export const CT_TYPE_CONSTANTS = mirrorEnum('sl_ct_type', 'SL_CT_', { FORWARD: 1, REVERSE: 2 });
export const CT_STATE_CONSTANTS = mirrorEnum('sl_ct_state', 'SL_CT_STATE_', { NEW: 0, SYN_SENT: 1, ESTABLISHED: 2, FIN: 3, CLOSED: 4 });
export const CT_F_CONSTANTS = mirrorEnum('sl_ct_flags', 'SL_CT_F_', { HAIRPIN: 1 << 0, EXTERNAL: 1 << 1, SNAT: 1 << 2, TUNNEL: 1 << 3, DECAP: 1 << 4, DSR: 1 << 5, FIN_SEEN: 1 << 7 });
export const VIP_F_CONSTANTS = mirrorEnum('sl_vip_flags', 'SL_VIP_F_', { REJECT_UNKNOWN: 1 << 0 });
export const CTLB_CONSTANTS = mirrorEnum('sl_ctlb_protocols', 'SL_CTLB_', { TCP: 1 << 0, UDP: 1 << 1 });
/** Drop reasons: the index of a reason's slot in sl_drop_counters; REASON_MAX slots in all. */
export const DROP_CONSTANTS = mirrorEnum('sl_drop_reason', 'SL_DROP_', {
  NONE: 0, NO_BACKEND: 1, NO_LOCAL_BACKEND: 2, BACKEND_MISSING: 3, CT_FULL: 4, CSUM: 5, MALFORMED: 6, SRC_RANGE: 7,
  UNKNOWN_PORT: 8, SNAT_PORTS: 9, NO_ROUTE: 10, TTL: 11, TUNNEL_SOURCE: 12, TUNNEL_MTU: 13, REASON_MAX: 16,
});
export const SVC_META_CONSTANTS = mirrorEnum('sl_svc_meta_sizes', 'SL_', { SVC_NAME_LEN: 192 });
/** The map capacities compiled into the objects (lib/maps.h); see src/dataplane/table-specs.ts. */
export const MAP_CAPACITY_CONSTANTS = mirrorEnum('sl_map_capacity', 'SL_MAX_', {
  FRONTENDS: 65536,
  BACKENDS: 262144,
  CT: 524288,
  AFFINITY: 65536,
  SOCK_REVNAT: 262144,
  SVC_IDS: 65536,
  VIPS: 65536,
  SRC_RANGES: 16384,
  MAGLEV_CHUNKS: 65536,
  TUNNEL_NODES: 16384,
  DSR_OPTOUT: 1024,
});
/** --external-mode: how external flows reach a backend on another node (host.bpf.c's sl_external_mode). */
export const EXTERNAL_MODE_CONSTANTS = mirrorEnum('sl_external_mode', 'SL_EXT_MODE_', { SNAT: 0, TUNNEL: 1, DSR: 2 });
/** The node-to-node tunnel (GUE variant 1: IPv4 in UDP; a DSR flow's packets: GUE variant 0 with the frontend). */
export const TUNNEL_CONSTANTS = mirrorEnum('sl_tunnel_consts', 'SL_TUNNEL_', { PORT_DEFAULT: 6080, OVERHEAD: 28, DSR_OVERHEAD: 40, TTL: 64, GUE_DSR: 1, V6_OVERHEAD: 48, V6_DSR_OVERHEAD: 72 });

/** The upgrade hand-off's slots (sl_handoff, bpf/lib/handoff.h). */
export const HANDOFF_CONSTANTS = mirrorEnum('sl_handoff_slot', 'SL_HANDOFF_', { INGRESS: 0, EGRESS: 1, SLOTS: 2 });

/** Maglev table geometry (sl_maglev4, lib/maglev.h). */
export const MAGLEV_CONSTANTS = mirrorEnum('sl_maglev_sizes', 'SL_MAGLEV_', { CHUNK: 256, SIZE_MIN: 251, SIZE_MAX: 65521, SIZE_DEFAULT: 16381 });

/** Default capacities of the IPv6 LRU maps (bpf/lib/maps6.h); the IPv6 hash maps use MAP_CAPACITY. */
export const MAP_CAPACITY6_CONSTANTS = mirrorEnum('sl_map_capacity6', 'SL_MAX_', { CT6: 131072, AFFINITY6: 16384, SOCK_REVNAT6: 65536 });

/** Every mirrored enum, for BTF verification. */
export const allConstantMirrors: readonly ConstantMirror[] = [
  SCOPE_CONSTANTS, SVC_F_CONSTANTS, FRONTEND_KIND_CONSTANTS, BE_F_CONSTANTS, CT_TYPE_CONSTANTS, CT_STATE_CONSTANTS, CT_F_CONSTANTS, VIP_F_CONSTANTS,
  CTLB_CONSTANTS, DROP_CONSTANTS, SVC_META_CONSTANTS, MAP_CAPACITY_CONSTANTS, MAP_CAPACITY6_CONSTANTS, MAGLEV_CONSTANTS, EXTERNAL_MODE_CONSTANTS,
  TUNNEL_CONSTANTS, HANDOFF_CONSTANTS,
];

export const SCOPE = SCOPE_CONSTANTS.values;
export const SVC_F = SVC_F_CONSTANTS.values;
export const SVC_F_KIND_SHIFT = SVC_F.KIND_SHIFT;
/** Frontend kinds by the model's name: the value in sl_service_value.flags bits 8-9 and the sl_ext_counters index. */
export const FRONTEND_KIND = {
  ClusterIP: FRONTEND_KIND_CONSTANTS.values.CLUSTER_IP,
  NodePort: FRONTEND_KIND_CONSTANTS.values.NODE_PORT,
  ExternalIP: FRONTEND_KIND_CONSTANTS.values.EXTERNAL_IP,
  LoadBalancer: FRONTEND_KIND_CONSTANTS.values.LOAD_BALANCER,
} as const;
export const FRONTEND_KIND_NAMES = ['ClusterIP', 'NodePort', 'ExternalIP', 'LoadBalancer'] as const;
export const VIP_F = VIP_F_CONSTANTS.values;
export const BE_F = BE_F_CONSTANTS.values;
export const CT_TYPE = CT_TYPE_CONSTANTS.values;
export const CT_STATE = CT_STATE_CONSTANTS.values;
export const CT_F = CT_F_CONSTANTS.values;
export const CTLB = CTLB_CONSTANTS.values;
export const MAP_CAPACITY = MAP_CAPACITY_CONSTANTS.values;
export const MAGLEV = MAGLEV_CONSTANTS.values;
export const EXTERNAL_MODE = EXTERNAL_MODE_CONSTANTS.values;
export const TUNNEL = TUNNEL_CONSTANTS.values;
export const HANDOFF = HANDOFF_CONSTANTS.values;
export const MAP_CAPACITY6 = MAP_CAPACITY6_CONSTANTS.values;
/** Bytes of sl_svc_meta.name, its NUL included. */
export const SVC_NAME_LEN = SVC_META_CONSTANTS.values.SVC_NAME_LEN;
/** Not a sluice.h constant: the IANA protocol numbers the maps carry. */
export const IPPROTO = { TCP: 6, UDP: 17, SCTP: 132, ICMP: 1 } as const;
export type DropReasonName = Lowercase<Exclude<keyof typeof DROP_CONSTANTS.values, 'REASON_MAX'>>;
/** Drop reason names (the sl_drop_reason enumerators in lower case), indexed by reason. */
export const DROP_REASONS: readonly DropReasonName[] = (() => {
  const names: DropReasonName[] = [];
  for (const [name, value] of Object.entries(DROP_CONSTANTS.values)) {
    if (name !== 'REASON_MAX') names[value] = name.toLowerCase() as DropReasonName;
  }
  return names;
})();
export const DROP_REASON_MAX = DROP_CONSTANTS.values.REASON_MAX;



export const frontendKey4 = defineStruct('sl_frontend_key4', {
  addr: ipv4,
  port: be16,
  proto: u8,
  scope: u8,
});
export type FrontendKey4 = ReturnType<typeof frontendKey4.decode>;

export const serviceValue = defineStruct('sl_service_value', {
  svc_id: u32,
  backend_id: u32,
  count: u32,
  local_count: u32,
  flags: u32,
  affinity_timeout_s: u32,
});
export type ServiceValue = ReturnType<typeof serviceValue.decode>;

export const backendKey = defineStruct('sl_backend_key', { backend_id: u32, ordinal: u32 });
export type BackendKey = ReturnType<typeof backendKey.decode>;

export const backendValue4 = defineStruct('sl_backend_value4', {
  addr: ipv4,
  port: be16,
  flags: u8,
  pad: pad(1),
  node_addr: ipv4,
});
export type BackendValue4 = ReturnType<typeof backendValue4.decode>;

export const ctKey4 = defineStruct('sl_ct_key4', {
  saddr: ipv4,
  daddr: ipv4,
  sport: be16,
  dport: be16,
  proto: u8,
  pad: pad(3),
});
export type CtKey4 = ReturnType<typeof ctKey4.decode>;

export const ctValue4 = defineStruct('sl_ct_value4', {
  created_ns: u64,
  last_seen_ns: u64,
  nat_addr: ipv4,
  nat_port: be16,
  type: u8,
  state: u8,
  nat_saddr: ipv4,
  svc_id: u32,
  flags: u32,
  nat_sport: be16,
  pad: pad(2, 2),
});
export type CtValue4 = ReturnType<typeof ctValue4.decode>;

export const affinityKey4 = defineStruct('sl_affinity_key4', { svc_id: u32, client_addr: ipv4 });
export type AffinityKey4 = ReturnType<typeof affinityKey4.decode>;

export const affinityValue4 = defineStruct('sl_affinity_value4', {
  last_used_ns: u64,
  backend_addr: ipv4,
  backend_port: be16,
  pad: pad(2, 2),
});
export type AffinityValue4 = ReturnType<typeof affinityValue4.decode>;

export const sockRevnatKey4 = defineStruct('sl_sock_revnat_key4', {
  cookie: u64,
  backend_addr: ipv4,
  backend_port: be16,
  pad: pad(2, 2),
});
export type SockRevnatKey4 = ReturnType<typeof sockRevnatKey4.decode>;

export const sockRevnatValue4 = defineStruct('sl_sock_revnat_value4', {
  frontend_addr: ipv4,
  frontend_port: be16,
  pad: pad(2, 2),
  svc_id: u32,
});
export type SockRevnatValue4 = ReturnType<typeof sockRevnatValue4.decode>;

export const svcCounters = defineStruct('sl_svc_counters', {
  packets: u64,
  bytes: u64,
  connections: u64,
  rejected: u64,
});
export type SvcCounters = ReturnType<typeof svcCounters.decode>;

export const vipKey4 = defineStruct('sl_vip_key4', { addr: ipv4 });
export type VipKey4 = ReturnType<typeof vipKey4.decode>;

export const vipValue = defineStruct('sl_vip_value', { flags: u32 });
export type VipValue = ReturnType<typeof vipValue.decode>;

export const srcRangeKey4 = defineStruct('sl_src_range_key4', { prefixlen: u32, svc_id: u32, addr: ipv4 });
export type SrcRangeKey4 = ReturnType<typeof srcRangeKey4.decode>;

export const srcRangeValue = defineStruct('sl_src_range_value', { flags: u32 });
export type SrcRangeValue = ReturnType<typeof srcRangeValue.decode>;

export const nodeConfig4 = defineStruct('sl_node_config4', { snat_addr: ipv4, snat_port_min: u16, snat_port_max: u16 });
export type NodeConfig4 = ReturnType<typeof nodeConfig4.decode>;

export const svcMeta = defineStruct('sl_svc_meta', { name: cstring(SVC_NAME_LEN) });
export type SvcMeta = ReturnType<typeof svcMeta.decode>;

/** Maglev tables (sl_maglev4): a chunk of SL_MAGLEV_CHUNK slots of one backend block's table. */
export const maglevKey = defineStruct('sl_maglev_key', { backend_id: u32, chunk: u32 });
export type MaglevKey = ReturnType<typeof maglevKey.decode>;
export const maglevChunk = defineStruct('sl_maglev_chunk', { size: u32, slot: u16Array(MAGLEV_CONSTANTS.values.CHUNK) });
export type MaglevChunk = ReturnType<typeof maglevChunk.decode>;

/** Array indexes (svc_id, drop reason) and __u64 counters. */
export const u32Key = scalar('__u32', u32);
export const u64Value = scalar('__u64', u64);

// The IPv6 twins: the same member names as the IPv4 structs, addresses as IPv6 text, so the
// writer, the mirror and the dumps handle both families with one set of types.
export const frontendKey6 = defineStruct('sl_frontend_key6', { addr: ipv6, port: be16, proto: u8, scope: u8 });
export const backendValue6 = defineStruct('sl_backend_value6', { addr: ipv6, port: be16, flags: u8, pad: pad(1), node_addr: ipv6 });
export const ctKey6 = defineStruct('sl_ct_key6', { saddr: ipv6, daddr: ipv6, sport: be16, dport: be16, proto: u8, pad: pad(3) });
export const ctValue6 = defineStruct('sl_ct_value6', {
  created_ns: u64,
  last_seen_ns: u64,
  nat_addr: ipv6,
  nat_port: be16,
  type: u8,
  state: u8,
  nat_saddr: ipv6,
  svc_id: u32,
  flags: u32,
  nat_sport: be16,
  pad: pad(2, 2),
});
export const affinityKey6 = defineStruct('sl_affinity_key6', { svc_id: u32, client_addr: ipv6 });
export const affinityValue6 = defineStruct('sl_affinity_value6', {
  last_used_ns: u64, backend_addr: ipv6, backend_port: be16, pad: pad(2, 2), pad2: pad(4, 4),
});
export const sockRevnatKey6 = defineStruct('sl_sock_revnat_key6', {
  cookie: u64, backend_addr: ipv6, backend_port: be16, pad: pad(2, 2), pad2: pad(4, 4),
});
export const sockRevnatValue6 = defineStruct('sl_sock_revnat_value6', { frontend_addr: ipv6, frontend_port: be16, pad: pad(2, 2), svc_id: u32 });
export const vipKey6 = defineStruct('sl_vip_key6', { addr: ipv6 });
/** sl_node_config6 (one slot): the IPv6 SNAT source of external flows to remote backends ('::' = none). */
export const nodeConfig6 = defineStruct('sl_node_config6', { snat_addr: ipv6, snat_port_min: u16, snat_port_max: u16 });
/** sl_src_ranges6 (LPM trie): prefixlen = 32 + the CIDR's length; the value is srcRangeValue. */
export const srcRangeKey6 = defineStruct('sl_src_range_key6', { prefixlen: u32, svc_id: u32, addr: ipv6 });
export type SrcRangeKey6 = ReturnType<typeof srcRangeKey6.decode>;

/** Every struct codec, for BTF verification. */
export const tunnelNodeKey4 = defineStruct('sl_tunnel_node_key4', { addr: ipv4 });
export const tunnelNodeValue = defineStruct('sl_tunnel_node_value', { flags: u32 });
/** sl_dsr_optout4 (LPM trie): client CIDRs that get Tunnel instead of DSR. */
export const dsrOptoutKey4 = defineStruct('sl_dsr_optout_key4', { prefixlen: u32, addr: ipv4 });
export const dsrOptoutValue = defineStruct('sl_dsr_optout_value', { flags: u32 });
/** sl_tunnel_nodes6: the Nodes' IPv6 addresses (value tunnelNodeValue). */
export const tunnelNodeKey6 = defineStruct('sl_tunnel_node_key6', { addr: ipv6 });
/** sl_dsr_optout6 (LPM trie): IPv6 client CIDRs that get Tunnel instead of DSR. */
export const dsrOptoutKey6 = defineStruct('sl_dsr_optout_key6', { prefixlen: u32, addr: ipv6 });

export const allStructCodecs = [
  frontendKey4, serviceValue, backendKey, backendValue4, ctKey4, ctValue4, affinityKey4,
  affinityValue4, sockRevnatKey4, sockRevnatValue4, svcCounters, svcMeta, vipKey4, vipValue,
  srcRangeKey4, srcRangeValue, nodeConfig4, maglevKey, maglevChunk, tunnelNodeKey4, tunnelNodeValue, dsrOptoutKey4, dsrOptoutValue,
  frontendKey6, backendValue6, ctKey6, ctValue6, affinityKey6, affinityValue6, sockRevnatKey6, sockRevnatValue6, vipKey6, nodeConfig6,
  srcRangeKey6, tunnelNodeKey6, dsrOptoutKey6,
] as const;

