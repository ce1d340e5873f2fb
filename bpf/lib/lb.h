/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service lookup, backend selection and counters, shared by the connect-time (cgroup) and the
 * TC programs so both paths balance exactly alike.
 *
 * Backend sets (built by user space, see sluice.h): a service's block holds the Cluster set at
 * ordinals [0, count) and the Local set at [count, count + local_count). User space already
 * applied the kube-proxy rules (ready first, serving-terminating only as a fallback, topology),
 * so selection is a uniform random pick within the chosen set.
 */
#ifndef SL_LIB_LB_H
#define SL_LIB_LB_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "clock.h"
#include "maps.h"

#define SL_NS_PER_SEC 1000000000ULL

/*
 * The bounded backend scan (sl_set_find4) reads at most this many slots of a set, so that every
 * program stays within the verifier's limits (5.10 included). It bounds every "is this backend
 * still in the set?" question: ClientIP affinity, UDP stickiness at connect time, the UDP socket
 * sweep.
 */
#define SL_SET_SCAN_MAX 128

/* The service behind addr:port/proto, or NULL when it is not a frontend. */
static __always_inline struct sl_service_value *sl_lookup_frontend4(__be32 addr, __be16 port,
								    __u8 proto)
{
	struct sl_frontend_key4 key = {
		.addr = addr,
		.port = port,
		.proto = proto,
		.scope = SL_SCOPE_ANY,
	};

	return bpf_map_lookup_elem(&sl_frontends4, &key);
}

/*
 * True when addr is a ClusterIP that refuses the ports it does not serve (sl_vips4). Asked only
 * after the frontend lookup missed, and only for a connection's first packet or connect().
 */
static __always_inline bool sl_vip_refuses_unknown4(__be32 addr)
{
	struct sl_vip_key4 key = {.addr = addr};
	struct sl_vip_value *vip = bpf_map_lookup_elem(&sl_vips4, &key);

	return vip && (vip->flags & SL_VIP_F_REJECT_UNKNOWN);
}

static __always_inline void sl_count_drop(enum sl_drop_reason r)
{
	__u32 key = r;
	__u64 *val = bpf_map_lookup_elem(&sl_drop_counters, &key);

	if (val)
		*val += 1; /* per-CPU slot: no atomics needed */
}

/*
 * bytes: size of the packet translated (TC path), or 0 when the event is not a packet (a
 * connect() balanced at socket level): then only connections/rejected move.
 * new_flow: a backend was selected for a new flow. rejected: the flow was refused.
 */
static __always_inline void sl_count_service(__u32 svc_id, __u64 bytes, bool new_flow,
					     bool rejected)
{
	struct sl_svc_counters *c = bpf_map_lookup_elem(&sl_svc_counters, &svc_id);

	if (!c)
		return;
	if (rejected) {
		c->rejected += 1;
		return;
	}
	if (bytes) {
		c->packets += 1;
		c->bytes += bytes;
	}
	if (new_flow)
		c->connections += 1;
}

/* The backend at ordinal of block backend_id, copied to *out; -SL_DROP_BACKEND_MISSING if none. */
static __always_inline int sl_backend_at4(__u32 backend_id, __u32 ordinal,
					  struct sl_backend_value4 *out)
{
	struct sl_backend_key key = {.backend_id = backend_id, .ordinal = ordinal};
	struct sl_backend_value4 *be = bpf_map_lookup_elem(&sl_backends4, &key);

	if (!be)
		return -SL_DROP_BACKEND_MISSING;
	*out = *be;
	return 0;
}

/* Is a backend a member of a set? The answer of the bounded scan (sl_set_find4). */
enum sl_set_membership {
	SL_SET_ABSENT = 0,  /* not in the set: the whole set was scanned */
	SL_SET_PRESENT = 1, /* in the set: *out holds its value, *ordinal its slot */
	SL_SET_UNKNOWN = 2, /* not in the first SL_SET_SCAN_MAX slots of a larger set */
};

/*
 * The one rule for set membership: finds addr:port within ordinals [base, base + n) of block
 * backend_id, reading at most SL_SET_SCAN_MAX slots. Past the bound the answer is
 * SL_SET_UNKNOWN, and each caller says what unknown means for it: ClientIP affinity and the
 * socket sweep trust the backend (user space removes the affinity entries of a backend it
 * removes, and a sweep must never close a healthy socket); UDP stickiness re-balances (a wrong
 * "absent" costs only stickiness). On SL_SET_PRESENT, *out and *ordinal describe the slot.
 */
static __always_inline enum sl_set_membership sl_set_find4(__u32 backend_id, __u32 base, __u32 n,
							   __be32 addr, __be16 port,
							   struct sl_backend_value4 *out,
							   __u32 *ordinal)
{
	struct sl_backend_key key = {.backend_id = backend_id};
	struct sl_backend_value4 *be;
	__u32 i;

#pragma clang loop unroll(disable)
	for (i = 0; i < SL_SET_SCAN_MAX; i++) {
		if (i >= n)
			return SL_SET_ABSENT;
		key.ordinal = base + i;
		be = bpf_map_lookup_elem(&sl_backends4, &key);
		if (be && be->addr == addr && be->port == port) {
			*out = *be;
			*ordinal = key.ordinal;
			return SL_SET_PRESENT;
		}
	}
	return n > SL_SET_SCAN_MAX ? SL_SET_UNKNOWN : SL_SET_ABSENT;
}

/*
 * True when addr:port may be taken as a member of the set: present, or past the scan bound
 * (trusted, see sl_set_find4). *out holds the backend (past the bound: addr and port only).
 */
static __always_inline bool sl_set_trusts4(__u32 backend_id, __u32 base, __u32 n, __be32 addr,
					   __be16 port, struct sl_backend_value4 *out)
{
	__u32 ordinal;

	switch (sl_set_find4(backend_id, base, n, addr, port, out, &ordinal)) {
	case SL_SET_PRESENT:
		return true;
	case SL_SET_UNKNOWN:
		out->addr = addr;
		out->port = port;
		out->flags = 0;
		out->pad = 0;
		out->node_addr = 0;
		return true;
	default:
		return false;
	}
}

/*
 * ClientIP affinity: fills *out with the remembered backend when the entry is fresh and the
 * backend still belongs to the chosen set; refreshes its timestamp. Returns true on a hit.
 */
static __always_inline bool sl_affinity_lookup4(const struct sl_service_value *svc,
						__be32 client_addr, __u32 base, __u32 n, __u64 now,
						struct sl_backend_value4 *out)
{
	struct sl_affinity_key4 key = {.svc_id = svc->svc_id, .client_addr = client_addr};
	struct sl_affinity_value4 *aff = bpf_map_lookup_elem(&sl_affinity4, &key);
	__u64 timeout_ns = (__u64)svc->affinity_timeout_s * SL_NS_PER_SEC;

	if (!aff)
		return false;
	if (sl_idle_longer_than(now, aff->last_used_ns, timeout_ns))
		return false;
	if (!sl_set_trusts4(svc->backend_id, base, n, aff->backend_addr, aff->backend_port, out))
		return false;
	aff->last_used_ns = now;
	return true;
}

static __always_inline void sl_affinity_store4(const struct sl_service_value *svc,
					       __be32 client_addr, __u64 now,
					       const struct sl_backend_value4 *be)
{
	struct sl_affinity_key4 key = {.svc_id = svc->svc_id, .client_addr = client_addr};
	struct sl_affinity_value4 val = {
		.last_used_ns = now,
		.backend_addr = be->addr,
		.backend_port = be->port,
	};

	bpf_map_update_elem(&sl_affinity4, &key, &val, BPF_ANY);
}

/*
 * The set a flow chooses its backend from, as ordinals [*base, *base + *n) of the service's
 * block: the Local set when the flow's traffic policy is Local (external: the client is outside
 * the node, NodePort/LB traffic, SL_SVC_F_EXTERNAL_LOCAL; internal: SL_SVC_F_INTERNAL_LOCAL),
 * else the Cluster set. Returns true for the Local set.
 */
static __always_inline bool sl_backend_set(const struct sl_service_value *svc, bool external,
					   __u32 *base, __u32 *n)
{
	__u32 local_flag = external ? SL_SVC_F_EXTERNAL_LOCAL : SL_SVC_F_INTERNAL_LOCAL;

	if (svc->flags & local_flag) {
		*base = svc->count;
		*n = svc->local_count;
		return true;
	}
	*base = 0;
	*n = svc->count;
	return false;
}

/*
 * Chooses a backend for a NEW flow from client_addr, in the set sl_backend_set gives (external:
 * the client is outside the node). Honours ClientIP affinity
 * (sl_affinity4, refreshed on use, expired after affinity_timeout_s). Returns 0 and fills *out,
 * or a negative -SL_DROP_* reason: -SL_DROP_NO_BACKEND when the chosen set is empty (reject),
 * -SL_DROP_NO_LOCAL_BACKEND when a Local policy finds no local backend while the service has
 * endpoints elsewhere (drop, as kube-proxy; with no endpoints at all it is a reject).
 */
static __always_inline int sl_select_backend4(const struct sl_service_value *svc,
					      __be32 client_addr, bool external,
					      struct sl_backend_value4 *out)
{
	bool affinity = (svc->flags & SL_SVC_F_AFFINITY) && svc->affinity_timeout_s;
	__u64 now = 0;
	__u32 base, n;
	bool local;
	int ret;

	local = sl_backend_set(svc, external, &base, &n);
	if (!n)
		return local && svc->count ? -SL_DROP_NO_LOCAL_BACKEND : -SL_DROP_NO_BACKEND;

	if (affinity) {
		now = bpf_ktime_get_ns();
		if (sl_affinity_lookup4(svc, client_addr, base, n, now, out))
			return 0;
	}

	ret = sl_backend_at4(svc->backend_id, base + bpf_get_prandom_u32() % n, out);
	if (ret < 0)
		return ret;
	if (affinity)
		sl_affinity_store4(svc, client_addr, now, out);
	return 0;
}

#endif /* SL_LIB_LB_H */
