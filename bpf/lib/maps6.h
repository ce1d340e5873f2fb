/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The IPv6 twins of the maps in lib/maps.h (which includes this header, so every object defines
 * them alike and libbpf reuses the pins). Shared with IPv4: sl_svc_counters, sl_drop_counters,
 * sl_svc_meta, sl_maglev4 (backend_id is one space) and the backend keys (struct sl_backend_key).
 */
#ifndef SL_LIB_MAPS6_H
#define SL_LIB_MAPS6_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_FRONTENDS);
	__type(key, struct sl_frontend_key6);
	__type(value, struct sl_service_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_frontends6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_BACKENDS);
	__type(key, struct sl_backend_key);
	__type(value, struct sl_backend_value6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_backends6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_MAX_CT6);
	__type(key, struct sl_ct_key6);
	__type(value, struct sl_ct_value6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_ct6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_MAX_AFFINITY6);
	__type(key, struct sl_affinity_key6);
	__type(value, struct sl_affinity_value6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_affinity6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_MAX_SOCK_REVNAT6);
	__type(key, struct sl_sock_revnat_key6);
	__type(value, struct sl_sock_revnat_value6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_sock_revnat6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_VIPS);
	__type(key, struct sl_vip_key6);
	__type(value, struct sl_vip_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_vips6 SEC(".maps");

/* loadBalancerSourceRanges of IPv6 service ports (struct sl_src_range_key6, lib/src_ranges.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SL_MAX_SRC_RANGES);
	__type(key, struct sl_src_range_key6);
	__type(value, struct sl_src_range_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_src_ranges6 SEC(".maps");

/* As sl_sock_udp4: the connect-time programs' per-socket UDP stickiness, never read by user space.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sl_sock_udp6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_sock_udp6 SEC(".maps");

/*
 * IPv6 packets the TC programs passed untouched because of extension headers they do not
 * translate (fragments, routing with segments left, ESP, ...; lib/parse6.h): per-CPU, one slot.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_ipv6_untranslated SEC(".maps");

/* This node's IPv6 SNAT source and port range (struct sl_node_config6, lib/snat6.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_node_config6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_node_config6 SEC(".maps");

/* The cluster's node IPv6 addresses: the only sources IPv6 tunnel traffic is unwrapped from. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_TUNNEL_NODES);
	__type(key, struct sl_tunnel_node_key6);
	__type(value, struct sl_tunnel_node_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_tunnel_nodes6 SEC(".maps");

/* IPv6 client CIDRs that get Tunnel instead of DSR (--dsr-optout-cidrs; DSR mode only). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SL_MAX_DSR_OPTOUT);
	__type(key, struct sl_dsr_optout_key6);
	__type(value, struct sl_dsr_optout_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_dsr_optout6 SEC(".maps");

#endif /* SL_LIB_MAPS6_H */
