// Codecs for the structs in bpf/include/sluice.h. The header is the truth: `allStructCodecs`
// is verified against the compiled objects' BTF at load (src/bpf) and in tests.
import { be16, cstring, defineStruct, ipv4, pad, scalar, u16, u32, u64, u8 } from './codec.js';


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

export const svcMeta = defineStruct('sl_svc_meta', { name: cstring(192) });
export type SvcMeta = ReturnType<typeof svcMeta.decode>;

/** Array indexes (svc_id, drop reason) and __u64 counters. */
export const u32Key = scalar('__u32', u32);
export const u64Value = scalar('__u64', u64);

/** Every struct codec, for BTF verification. */
export const allStructCodecs = [
  frontendKey4, serviceValue, backendKey, backendValue4, ctKey4, ctValue4, affinityKey4,
  affinityValue4, sockRevnatKey4, sockRevnatValue4, svcCounters, svcMeta, vipKey4, vipValue,
  srcRangeKey4, srcRangeValue, nodeConfig4,
] as const;

// Constants mirrored from sluice.h. test/datapath verifies them against the object where BTF
// carries them (enums) and by behaviour otherwise.
export const SVC_F = {
  INTERNAL_LOCAL: 1 << 0,
  EXTERNAL_LOCAL: 1 << 1,
  AFFINITY: 1 << 2,
  EXTERNAL: 1 << 3,
  SRC_RANGES: 1 << 4,
  DSR: 1 << 5,
  MAGLEV: 1 << 6,
} as const;
/** sl_service_value.flags bits 8-9: the frontend's kind (enum sl_frontend_kind). */
export const SVC_F_KIND_SHIFT = 8;
export const FRONTEND_KIND = { ClusterIP: 0, NodePort: 1, ExternalIP: 2, LoadBalancer: 3 } as const;
export const FRONTEND_KIND_NAMES = ['ClusterIP', 'NodePort', 'ExternalIP', 'LoadBalancer'] as const;
export const VIP_F = { REJECT_UNKNOWN: 1 << 0 } as const;
export const BE_F = { LOCAL: 1 << 0, TERMINATING: 1 << 1 } as const;
export const CT_TYPE = { FORWARD: 1, REVERSE: 2 } as const;
export const CT_STATE = { NEW: 0, SYN_SENT: 1, ESTABLISHED: 2, FIN: 3, CLOSED: 4 } as const;
export const CT_F = { HAIRPIN: 1 << 0, EXTERNAL: 1 << 1, SNAT: 1 << 2 } as const;
export const CTLB = { TCP: 1 << 0, UDP: 1 << 1 } as const;
export const IPPROTO = { TCP: 6, UDP: 17, SCTP: 132, ICMP: 1 } as const;
export const DROP_REASONS = [
  'none', 'no_backend', 'no_local_backend', 'backend_missing', 'ct_full', 'csum', 'malformed', 'src_range',
  'unknown_port', 'snat_ports', 'no_route', 'ttl',
] as const;
export const DROP_REASON_MAX = 16;
