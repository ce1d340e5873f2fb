/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking for IPv6 on the TC path (sl_ct6): the entries, states and timeouts of
 * lib/conntrack.h (whose family-free rules, sl_ct_timeout_ns and sl_ct_next_state, are used as
 * they are), for pod flows: FORWARD client -> frontend, REVERSE backend -> client, or for hairpin
 * (the client is its own backend) REVERSE backend -> frontend, both entries flagged
 * SL_CT_F_HAIRPIN with nat_saddr the frontend, as in IPv4; and for external flows (host.bpf.c,
 * lib/host6.h) the SL_CT_F_EXTERNAL entries of lib/conntrack.h, SNAT included (nat_saddr and
 * nat_sport as the table in sluice.h says), and the Tunnel and DSR modes' TUNNEL and DECAP
 * entries (sl_ct_create_tunnelled6).
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

/*
 * The SNAT port allocator's helpers (lib/snat6.h, host.bpf.c only) are calls of their own
 * (BPF-to-BPF): inlined beside the allocator's IPv6 keys and entries they exceed the 512-byte
 * stack.
 */

/*
 * Deletes a flow: entry key/val and its twin, while the twin still translates back to key.
 * Inline, for tc.bpf.c: a program that makes tail calls (the upgrade hand-off) keeps each
 * BPF-to-BPF frame under 256 bytes on 5.10, which its IPv6 locals exceed.
 */
static __always_inline void sl_ct_remove_flow6(const struct sl_ct_key6 *key,
					       const struct sl_ct_value6 *val)
{
	struct sl_ct_key6 twin = {};

	if (sl_ct_twin6(key, val)) {
		sl_ct_twin_key6(key, val, &twin);
		bpf_map_delete_elem(&sl_ct6, &twin);
	}
	bpf_map_delete_elem(&sl_ct6, key);
}

/* sl_ct_remove_flow6 as a call of its own (host.bpf.c's IPv6 programs: stack, see above). */
static __noinline void sl_ct_delete_flow6(const struct sl_ct_key6 *key,
					  const struct sl_ct_value6 *val)
{
	sl_ct_remove_flow6(key, val);
}

/* As sl_ct_forget_finished4: a direct SYN (tuple fwd) drops the finished service flow whose
 * REVERSE entry would rewrite its SYN-ACK. */
static __always_inline void sl_ct_forget_finished6(const struct sl_ct_key6 *fwd, __u64 *now)
{
	struct sl_ct_key6 rev = {.sport = fwd->dport, .dport = fwd->sport, .proto = fwd->proto};
	struct sl_ct_value6 *val;

	sl_addr6_copy(rev.saddr, fwd->daddr);
	sl_addr6_copy(rev.daddr, fwd->saddr);
	val = bpf_map_lookup_elem(&sl_ct6, &rev);
	if (!val || val->type != SL_CT_REVERSE || (val->flags & SL_CT_F_HAIRPIN))
		return;
	*now = bpf_ktime_get_ns();
	if (val->state < SL_CT_STATE_FIN && !sl_ct_expired6(val, rev.proto, *now))
		return;
	sl_ct_remove_flow6(&rev, val);
}

/* As sl_ct_snat_over4: whether the SNAT flow holding tuple key (REVERSE entry val) is over. */
static __noinline bool sl_ct_snat_over6(const struct sl_ct_key6 *key,
					const struct sl_ct_value6 *val, __u64 now)
{
	struct sl_ct_value6 *tv;

	if (val->type != SL_CT_REVERSE || !(val->flags & SL_CT_F_SNAT))
		return false;
	if (val->state == SL_CT_STATE_CLOSED)
		return true;
	tv = sl_ct_twin6(key, val);
	if (tv && (val->flags & tv->flags & SL_CT_F_FIN_SEEN))
		return true;
	return sl_ct_expired6(val, key->proto, now) && (!tv || sl_ct_expired6(tv, key->proto, now));
}

/*
 * Whether the SNAT flow holding tuple key (REVERSE entry val) may be over, from val alone: reset,
 * a FIN seen from the backend, or idle past its timeout. Necessary for sl_ct_snat_over6, and
 * cheap (no twin lookup, no call): the allocator asks it on every attempt (lib/snat6.h).
 */
static __always_inline bool sl_ct_snat_may_be_over6(const struct sl_ct_key6 *key,
						    const struct sl_ct_value6 *val, __u64 now)
{
	if (val->type != SL_CT_REVERSE || !(val->flags & SL_CT_F_SNAT))
		return false;
	return val->state == SL_CT_STATE_CLOSED || (val->flags & SL_CT_F_FIN_SEEN) ||
	       sl_ct_expired6(val, key->proto, now);
}

/* As sl_ct_snat_reclaim4: frees SNAT tuple key if its flow is over; true when it is free. */
static __always_inline bool sl_ct_snat_reclaim6(const struct sl_ct_key6 *key, __u64 now)
{
	struct sl_ct_value6 *val = bpf_map_lookup_elem(&sl_ct6, key);

	if (!val)
		return true;
	if (!sl_ct_snat_over6(key, val, now))
		return false;
	sl_ct_delete_flow6(key, val);
	return true;
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
 * The REVERSE entry of a new flow from the client's tuple fwd (nat_addr:nat_port its frontend),
 * made at its first packet (tcp_flags, now); nat_saddr zero, for the caller to fill (the table
 * in sluice.h).
 */
static __always_inline void sl_ct_reverse_value6(struct sl_ct_value6 *val,
						 const struct sl_ct_key6 *fwd, __u32 svc_id,
						 __u32 flags, __be16 nat_sport, __u8 tcp_flags,
						 __u64 now)
{
	*val = (struct sl_ct_value6){
		.created_ns = now,
		.last_seen_ns = now,
		.nat_port = fwd->dport,
		.type = SL_CT_REVERSE,
		.state = sl_ct_next_state(fwd->proto, SL_CT_STATE_NEW, tcp_flags, false),
		.svc_id = svc_id,
		.flags = flags,
		.nat_sport = nat_sport,
	};
	sl_addr6_copy(val->nat_addr, fwd->daddr);
}

/*
 * Both entries of a new flow from the client's tuple fwd to backend be, flagged flags (the
 * nat_saddr/nat_sport table in sluice.h), REVERSE first as sl_ct_create_flow4:
 *  - SL_CT_F_HAIRPIN: the client is the backend, so the forwarded packet's source becomes the
 *    frontend too (client port kept); the reply's tuple is be -> frontend:cport;
 *  - SL_CT_F_SNAT: the source becomes snat_addr:snat_port, and the REVERSE entry (be ->
 *    snat_addr:snat_port), inserted only if that tuple is free, keeps the client to restore;
 *  - neither: the source is untouched.
 * snat_addr is read only with SL_CT_F_SNAT but must point at 16 readable bytes whatever the flags
 * (never NULL: the verifier cannot always tell the compiler's NULL checks apart).
 * Returns 0, -EEXIST (SNAT, tuple taken: try another port) or -SL_DROP_CT_FULL.
 */
static __always_inline int sl_ct_create_flow6(const struct sl_ct_key6 *fwd,
					      const struct sl_backend_value6 *be, __u32 svc_id,
					      __u32 flags, const __be32 *snat_addr,
					      __be16 snat_port, __u8 tcp_flags, __u64 now)
{
	bool hairpin = flags & SL_CT_F_HAIRPIN, snat = flags & SL_CT_F_SNAT;
	struct sl_ct_key6 rev = {
		.sport = be->port,
		.dport = snat ? snat_port : fwd->sport,
		.proto = fwd->proto,
	};
	struct sl_ct_value6 val;
	int ret;

	sl_addr6_copy(rev.saddr, be->addr);
	sl_addr6_copy(rev.daddr, hairpin ? fwd->daddr : snat ? snat_addr : fwd->saddr);
	sl_ct_reverse_value6(&val, fwd, svc_id, flags, snat ? fwd->sport : 0, tcp_flags, now);
	if (hairpin)
		sl_addr6_copy(val.nat_saddr, fwd->daddr);
	else if (snat)
		sl_addr6_copy(val.nat_saddr, fwd->saddr);
	ret = bpf_map_update_elem(&sl_ct6, &rev, &val, snat ? BPF_NOEXIST : BPF_ANY);
	if (ret == -17 /* EEXIST */ && snat)
		return ret;
	if (ret < 0)
		return -SL_DROP_CT_FULL;
	sl_addr6_copy(val.nat_addr, be->addr);
	val.nat_port = be->port;
	if (snat) {
		sl_addr6_copy(val.nat_saddr, snat_addr);
		val.nat_sport = snat_port;
	}
	val.type = SL_CT_FORWARD;
	if (bpf_map_update_elem(&sl_ct6, fwd, &val, BPF_ANY) < 0) {
		bpf_map_delete_elem(&sl_ct6, &rev);
		return -SL_DROP_CT_FULL;
	}
	return 0;
}

/* A pod's flow (tc.bpf.c) from fwd to be; hairpin: the client is the backend. */
static __always_inline int sl_ct_create6(const struct sl_ct_key6 *fwd,
					 const struct sl_backend_value6 *be, __u32 svc_id,
					 bool hairpin, __u8 tcp_flags, __u64 now)
{
	return sl_ct_create_flow6(fwd, be, svc_id, hairpin ? SL_CT_F_HAIRPIN : 0, fwd->saddr, 0,
				  tcp_flags, now);
}

/*
 * Tunnel and DSR modes (lib/tunnel6.h), as sl_ct_create_tunnel4 and sl_ct_create_decap4: both
 * entries of a flow fwd (client -> frontend, or client -> backend at the backend's node) to
 * backend be, the client's address and port untouched. nat_saddr of the FORWARD entry is
 * fwd_saddr, of the REVERSE one rev_saddr (with rev_sport): the nat_saddr table in sluice.h.
 */
static __always_inline int sl_ct_create_tunnelled6(const struct sl_ct_key6 *fwd,
						   const struct sl_backend_value6 *be, __u32 svc_id,
						   __u32 flags, const __be32 *fwd_saddr,
						   const __be32 *rev_saddr, __be16 rev_sport,
						   __u8 tcp_flags, __u64 now)
{
	struct sl_ct_key6 rev = {.sport = be->port, .dport = fwd->sport, .proto = fwd->proto};
	struct sl_ct_value6 val;

	sl_addr6_copy(rev.saddr, be->addr);
	sl_addr6_copy(rev.daddr, fwd->saddr);
	sl_ct_reverse_value6(&val, fwd, svc_id, flags, rev_sport, tcp_flags, now);
	sl_addr6_copy(val.nat_saddr, rev_saddr);
	if (bpf_map_update_elem(&sl_ct6, &rev, &val, BPF_ANY) < 0)
		return -SL_DROP_CT_FULL;
	sl_addr6_copy(val.nat_addr, be->addr);
	val.nat_port = be->port;
	sl_addr6_copy(val.nat_saddr, fwd_saddr);
	val.nat_sport = 0;
	val.type = SL_CT_FORWARD;
	if (bpf_map_update_elem(&sl_ct6, fwd, &val, BPF_ANY) < 0) {
		bpf_map_delete_elem(&sl_ct6, &rev);
		return -SL_DROP_CT_FULL;
	}
	return 0;
}

#endif /* SL_LIB_CONNTRACK6_H */
