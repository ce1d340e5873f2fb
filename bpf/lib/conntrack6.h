/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking for IPv6 on the TC path (sl_ct6): the entries, states and timeouts of
 * lib/conntrack.h (whose family-free rules, sl_ct_timeout_ns and sl_ct_next_state, are used as
 * they are), for pod flows: FORWARD client -> frontend, REVERSE backend -> client, or for hairpin
 * (the client is its own backend) REVERSE backend -> frontend, both entries flagged
 * SL_CT_F_HAIRPIN with nat_saddr the frontend, as in IPv4; and for external flows (host.bpf.c,
 * lib/host6.h) the SL_CT_F_EXTERNAL entries of lib/conntrack.h, SNAT included (nat_saddr and
 * nat_sport as the table in sluice.h says). Tunnel and DSR entries exist only in IPv4.
 */
#ifndef SL_LIB_CONNTRACK6_H
#define SL_LIB_CONNTRACK6_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "clock.h"
#include "maps.h"
#include "conntrack.h"
#include "lb6.h"
#include "parse6.h"

static __always_inline void sl_ct_key_from_pkt6(const struct sl_pkt6 *pkt, struct sl_ct_key6 *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	sl_addr6_copy(key->saddr, pkt->saddr);
	sl_addr6_copy(key->daddr, pkt->daddr);
	key->sport = pkt->sport;
	key->dport = pkt->dport;
	key->proto = pkt->proto;
}

static __always_inline bool sl_ct_expired6(const struct sl_ct_value6 *val, __u8 proto, __u64 now)
{
	return sl_idle_longer_than(now, val->last_seen_ns, sl_ct_timeout_ns(proto, val->state));
}

/* The key of the other entry of the flow that key/val belongs to (as sl_ct_twin_key4). */
static __always_inline void sl_ct_twin_key6(const struct sl_ct_key6 *key,
					    const struct sl_ct_value6 *val, struct sl_ct_key6 *twin)
{
	bool hairpin = val->flags & SL_CT_F_HAIRPIN;
	bool snat = val->flags & SL_CT_F_SNAT;

	twin->proto = key->proto;
	if (val->type == SL_CT_FORWARD) {
		sl_addr6_copy(twin->saddr, val->nat_addr);
		sl_addr6_copy(twin->daddr, hairpin || snat ? val->nat_saddr : key->saddr);
		twin->sport = val->nat_port;
		twin->dport = snat ? val->nat_sport : key->sport;
	} else {
		sl_addr6_copy(twin->saddr, hairpin ? key->saddr
					   : snat  ? val->nat_saddr
						   : key->daddr);
		sl_addr6_copy(twin->daddr, val->nat_addr);
		twin->sport = snat ? val->nat_sport : key->dport;
		twin->dport = val->nat_port;
	}
}

/* The other entry of the flow, or NULL when it is gone or belongs to a newer flow. */
static __always_inline struct sl_ct_value6 *sl_ct_twin6(const struct sl_ct_key6 *key,
							const struct sl_ct_value6 *val)
{
	struct sl_ct_key6 twin = {};
	struct sl_ct_value6 *tv;

	sl_ct_twin_key6(key, val, &twin);
	tv = bpf_map_lookup_elem(&sl_ct6, &twin);
	if (!tv || tv->type == val->type)
		return NULL;
	if (val->type == SL_CT_FORWARD) {
		if (tv->nat_port != key->dport || !sl_addr6_eq(tv->nat_addr, key->daddr))
			return NULL;
	} else if (tv->nat_port != key->sport || !sl_addr6_eq(tv->nat_addr, key->saddr)) {
		return NULL;
	}
	return tv;
}

/* As sl_ct_lookup4. */
static __always_inline struct sl_ct_value6 *sl_ct_lookup6(const struct sl_ct_key6 *key,
							  __u8 tcp_flags, __u64 *now)
{
	struct sl_ct_value6 *val = bpf_map_lookup_elem(&sl_ct6, key);
	struct sl_ct_value6 *tv;

	if (!val)
		return NULL;
	*now = bpf_ktime_get_ns();
	if (val->type == SL_CT_FORWARD && sl_tcp_is_open(key->proto, tcp_flags) &&
	    val->state >= SL_CT_STATE_FIN)
		return NULL;
	if (!sl_ct_expired6(val, key->proto, *now))
		return val;
	tv = sl_ct_twin6(key, val);
	if (tv && !sl_ct_expired6(tv, key->proto, *now))
		return val;
	return NULL;
}

/* As sl_ct_update4. */
static __always_inline void sl_ct_update6(const struct sl_ct_key6 *key, struct sl_ct_value6 *val,
					  __u8 tcp_flags, __u64 now)
{
	bool reply = val->type == SL_CT_REVERSE;
	__u8 next = sl_ct_next_state(key->proto, val->state, tcp_flags, reply);
	struct sl_ct_value6 *tv;

	val->last_seen_ns = now;
	if (key->proto == IPPROTO_TCP && (tcp_flags & SL_TCP_FLAG_FIN))
		val->flags |= SL_CT_F_FIN_SEEN; /* per direction: see sl_ct_snat_over6 */
	if (next == val->state)
		return;
	tv = sl_ct_twin6(key, val);
	val->state = next;
	if (tv) {
		tv->state = next;
		tv->last_seen_ns = now;
	}
}

/*
 * What a new flow's two entries hold beyond the client's tuple and the backend, as struct
 * sl_ct_new4 (addresses by pointer: NULL is ::). The reply's tuple is be -> src_addr:src_port.
 */
struct sl_ct_new6 {
	const __be32 *src_addr;	 /* the forwarded packet's source: the client, frontend or node */
	const __be32 *fwd_saddr; /* FORWARD nat_saddr */
	const __be32 *rev_saddr; /* REVERSE nat_saddr */
	__u32 flags;		 /* SL_CT_F_* of both entries */
	__be16 src_port;
	__be16 fwd_sport; /* FORWARD nat_sport */
	__be16 rev_sport; /* REVERSE nat_sport */
	bool exclusive;	  /* the REVERSE tuple must be free (BPF_NOEXIST): -EEXIST otherwise */
};

/* As sl_ct_create_flow4: REVERSE first; 0, -EEXIST (n->exclusive, tuple taken) or -CT_FULL. */
static __always_inline int sl_ct_create_flow6(const struct sl_ct_key6 *fwd,
					      const struct sl_backend_value6 *be, __u32 svc_id,
					      const struct sl_ct_new6 *n, __u8 tcp_flags, __u64 now)
{
	struct sl_ct_key6 rev = {.sport = be->port, .dport = n->src_port, .proto = fwd->proto};
	struct sl_ct_value6 val = {
		.created_ns = now,
		.last_seen_ns = now,
		.nat_port = fwd->dport,
		.type = SL_CT_REVERSE,
		.state = sl_ct_next_state(fwd->proto, SL_CT_STATE_NEW, tcp_flags, false),
		.svc_id = svc_id,
		.flags = n->flags,
		.nat_sport = n->rev_sport,
	};
	int ret;

	sl_addr6_copy(rev.saddr, be->addr);
	sl_addr6_copy(rev.daddr, n->src_addr);
	sl_addr6_copy(val.nat_addr, fwd->daddr);
	if (n->rev_saddr)
		sl_addr6_copy(val.nat_saddr, n->rev_saddr);
	ret = bpf_map_update_elem(&sl_ct6, &rev, &val, n->exclusive ? BPF_NOEXIST : BPF_ANY);
	if (ret == -17 /* EEXIST */ && n->exclusive)
		return ret;
	if (ret < 0)
		return -SL_DROP_CT_FULL;
	sl_addr6_copy(val.nat_addr, be->addr);
	val.nat_port = be->port;
	__builtin_memset(val.nat_saddr, 0, sizeof(val.nat_saddr));
	if (n->fwd_saddr)
		sl_addr6_copy(val.nat_saddr, n->fwd_saddr);
	val.nat_sport = n->fwd_sport;
	val.type = SL_CT_FORWARD;
	if (bpf_map_update_elem(&sl_ct6, fwd, &val, BPF_ANY) < 0) {
		bpf_map_delete_elem(&sl_ct6, &rev);
		return -SL_DROP_CT_FULL;
	}
	return 0;
}

/*
 * Both entries of a new pod flow from fwd to be (tc.bpf.c). hairpin: the client is the backend,
 * so the forwarded packet's source becomes the frontend too (client port kept) and the reply's
 * tuple is be -> frontend:cport.
 */
static __always_inline int sl_ct_create6(const struct sl_ct_key6 *fwd,
					 const struct sl_backend_value6 *be, __u32 svc_id,
					 bool hairpin, __u8 tcp_flags, __u64 now)
{
	struct sl_ct_new6 n = {
		.src_addr = hairpin ? fwd->daddr : fwd->saddr,
		.src_port = fwd->sport,
		.fwd_saddr = hairpin ? fwd->daddr : NULL,
		.rev_saddr = hairpin ? fwd->daddr : NULL,
		.flags = hairpin ? SL_CT_F_HAIRPIN : 0,
	};

	return sl_ct_create_flow6(fwd, be, svc_id, &n, tcp_flags, now);
}

/*
 * An external flow (host.bpf.c, lib/host6.h) from the client's tuple fwd to backend be, as
 * sl_ct_create_external4: snat_addr NULL, DNAT only; otherwise the source becomes
 * snat_addr:snat_port and the REVERSE entry, inserted only if that tuple is free (-EEXIST: try
 * another port), keeps the client to restore.
 */
static __always_inline int sl_ct_create_external6(const struct sl_ct_key6 *fwd,
						  const struct sl_backend_value6 *be, __u32 svc_id,
						  const __be32 *snat_addr, __be16 snat_port,
						  __u8 tcp_flags, __u64 now)
{
	bool snat = snat_addr != NULL;
	struct sl_ct_new6 n = {
		.src_addr = snat ? snat_addr : fwd->saddr,
		.src_port = snat ? snat_port : fwd->sport,
		.fwd_saddr = snat_addr,
		.fwd_sport = snat ? snat_port : 0,
		.rev_saddr = snat ? fwd->saddr : NULL,
		.rev_sport = snat ? fwd->sport : 0,
		.flags = SL_CT_F_EXTERNAL | (snat ? SL_CT_F_SNAT : 0),
		.exclusive = snat,
	};

	return sl_ct_create_flow6(fwd, be, svc_id, &n, tcp_flags, now);
}

#endif /* SL_LIB_CONNTRACK6_H */
