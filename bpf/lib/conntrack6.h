/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking for IPv6 on the TC path (sl_ct6): the entries, states and timeouts of
 * lib/conntrack.h (whose family-free rules, sl_ct_timeout_ns and sl_ct_next_state, are used as
 * they are), for pod flows: FORWARD client -> frontend, REVERSE backend -> client, or for hairpin
 * (the client is its own backend) REVERSE backend -> frontend, both entries flagged
 * SL_CT_F_HAIRPIN with nat_saddr the frontend, as in IPv4. SNAT flows are not built yet
 * (docs/ipv6.md).
 */
#ifndef SL_LIB_CONNTRACK6_H
#define SL_LIB_CONNTRACK6_H

#include <stdbool.h>
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

	twin->proto = key->proto;
	if (val->type == SL_CT_FORWARD) {
		sl_addr6_copy(twin->saddr, val->nat_addr);
		sl_addr6_copy(twin->daddr, hairpin ? val->nat_saddr : key->saddr);
		twin->sport = val->nat_port;
		twin->dport = key->sport;
	} else {
		sl_addr6_copy(twin->saddr, hairpin ? key->saddr : key->daddr);
		sl_addr6_copy(twin->daddr, val->nat_addr);
		twin->sport = key->dport;
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
 * Both entries of a new flow from fwd to be; REVERSE first, as sl_ct_create4. hairpin: the client
 * is the backend, so the forwarded packet's source becomes the frontend too (client port kept)
 * and the reply's tuple is be -> frontend:cport.
 */
static __always_inline int sl_ct_create6(const struct sl_ct_key6 *fwd,
					 const struct sl_backend_value6 *be, __u32 svc_id,
					 bool hairpin, __u8 tcp_flags, __u64 now)
{
	struct sl_ct_key6 rev = {.sport = be->port, .dport = fwd->sport, .proto = fwd->proto};
	struct sl_ct_value6 val = {
		.created_ns = now,
		.last_seen_ns = now,
		.nat_port = fwd->dport,
		.type = SL_CT_REVERSE,
		.state = sl_ct_next_state(fwd->proto, SL_CT_STATE_NEW, tcp_flags, false),
		.svc_id = svc_id,
		.flags = hairpin ? SL_CT_F_HAIRPIN : 0,
	};

	sl_addr6_copy(rev.saddr, be->addr);
	sl_addr6_copy(rev.daddr, hairpin ? fwd->daddr : fwd->saddr);
	sl_addr6_copy(val.nat_addr, fwd->daddr);
	if (hairpin)
		sl_addr6_copy(val.nat_saddr, fwd->daddr);
	if (bpf_map_update_elem(&sl_ct6, &rev, &val, BPF_ANY) < 0)
		return -SL_DROP_CT_FULL;
	sl_addr6_copy(val.nat_addr, be->addr);
	val.nat_port = be->port;
	val.type = SL_CT_FORWARD;
	if (bpf_map_update_elem(&sl_ct6, fwd, &val, BPF_ANY) < 0) {
		bpf_map_delete_elem(&sl_ct6, &rev);
		return -SL_DROP_CT_FULL;
	}
	return 0;
}

#endif /* SL_LIB_CONNTRACK6_H */
