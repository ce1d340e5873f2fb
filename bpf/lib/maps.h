/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps every Sluice program shares. Both entry objects (connect.bpf.c, tc.bpf.c) include this
 * header so their definitions are identical: libbpf then reuses the maps pinned by name under the
 * agent's pin directory, and a restarted agent finds its state where it left it. User space may
 * resize a map before load (bpf_map__set_max_entries); the defaults are the SL_MAX_* constants.
 */
#ifndef SL_LIB_MAPS_H
#define SL_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_FRONTENDS);
	__type(key, struct sl_frontend_key4);
	__type(value, struct sl_service_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_frontends4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_BACKENDS);
	__type(key, struct sl_backend_key);
	__type(value, struct sl_backend_value4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_backends4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_MAX_CT);
	__type(key, struct sl_ct_key4);
	__type(value, struct sl_ct_value4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_MAX_AFFINITY);
	__type(key, struct sl_affinity_key4);
	__type(value, struct sl_affinity_value4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_affinity4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_MAX_SOCK_REVNAT);
	__type(key, struct sl_sock_revnat_key4);
	__type(value, struct sl_sock_revnat_value4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_sock_revnat4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_MAX_SVC_IDS);
	__type(key, __u32);
	__type(value, struct sl_svc_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_svc_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_DROP_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_drop_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_VIPS);
	__type(key, struct sl_vip_key4);
	__type(value, struct sl_vip_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_vips4 SEC(".maps");

/*
 * The last backend an unconnected UDP socket sent a datagram to, per frontend (struct
 * sl_sock_udp4). Used by the connect-time programs only (user space never reads it), freed by
 * the kernel with the socket.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sl_sock_udp4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_sock_udp4 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SL_MAX_SRC_RANGES);
	__type(key, struct sl_src_range_key4);
	__type(value, struct sl_src_range_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_src_ranges4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_node_config4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_node_config SEC(".maps");

/* The cluster's node addresses: the only sources tunnel traffic is decapsulated from. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_TUNNEL_NODES);
	__type(key, struct sl_tunnel_node_key4);
	__type(value, struct sl_tunnel_node_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_tunnel_nodes4 SEC(".maps");

/* Client CIDRs that get Tunnel instead of DSR (--dsr-optout-cidrs; DSR mode only). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SL_MAX_DSR_OPTOUT);
	__type(key, struct sl_dsr_optout_key4);
	__type(value, struct sl_dsr_optout_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_dsr_optout4 SEC(".maps");

/* External (host-interface) traffic by frontend kind: per-CPU, indexed by enum sl_frontend_kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_KIND_MAX);
	__type(key, __u32);
	__type(value, struct sl_svc_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_ext_counters SEC(".maps");

/* Maglev tables of external services, by backend block (struct sl_maglev_chunk, lib/maglev.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_MAGLEV_CHUNKS);
	__type(key, struct sl_maglev_key);
	__type(value, struct sl_maglev_chunk);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_maglev4 SEC(".maps");

/* Not read by the programs: names for dumps while the agent is down. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_MAX_SVC_IDS);
	__type(key, __u32);
	__type(value, struct sl_svc_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_svc_meta SEC(".maps");

/* The IPv6 twins of the maps above. */
#include "maps6.h"

/*
 * The anchor that puts every constant enum of sluice.h into this object's BTF (see struct
 * sl_btf_constants). It lives in a section of its own that libbpf skips (only .data, .rodata,
 * .bss, .maps and program sections become kernel objects): nothing reads it, no map is created
 * for it, and the object's BTF, which libbpf loads with the programs, describes it.
 */
struct sl_btf_constants sl_btf_constants SEC(".sl_btf_anchor");

#endif /* SL_LIB_MAPS_H */
