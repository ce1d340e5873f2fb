/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking for the TC path (sl_ct4, an LRU hash).
 *
 * A flow has two entries: FORWARD, keyed by the tuple the client sends (client -> frontend), and
 * REVERSE, keyed by the tuple the backend answers with (backend -> client, or backend -> frontend
 * for hairpin). Each packet looks up exactly one entry (its own direction) and refreshes only
 * that one; the twin is consulted when an entry looks expired (a flow idle in one direction
 * only is still alive) and when the TCP state changes (the state is kept equal in both).
 *
 * An expired entry is treated as absent: the next packet selects a backend afresh.
 */
#ifndef SL_LIB_CONNTRACK_H
#define SL_LIB_CONNTRACK_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "clock.h"
#include "maps.h"
#include "parse.h"

/* Timeouts (ns), set by user space before load; the defaults are Calico's. */
const volatile __u64 sl_ct_timeout_tcp_syn_sent_ns = 20ULL * 1000000000ULL;
const volatile __u64 sl_ct_timeout_tcp_established_ns = 3600ULL * 1000000000ULL;
const volatile __u64 sl_ct_timeout_tcp_fin_ns = 30ULL * 1000000000ULL;
const volatile __u64 sl_ct_timeout_tcp_rst_ns = 40ULL * 1000000000ULL;
const volatile __u64 sl_ct_timeout_udp_ns = 60ULL * 1000000000ULL;

static __always_inline void sl_ct_key_from_pkt4(const struct sl_pkt4 *pkt, struct sl_ct_key4 *key)
{
	key->saddr = pkt->saddr;
	key->daddr = pkt->daddr;
	key->sport = pkt->sport;
	key->dport = pkt->dport;
	key->proto = pkt->proto;
	key->pad[0] = 0;
	key->pad[1] = 0;
	key->pad[2] = 0;
}

static __always_inline __u64 sl_ct_timeout_ns(__u8 proto, __u8 state)
{
	if (proto != IPPROTO_TCP)
		return sl_ct_timeout_udp_ns;
	switch (state) {
	case SL_CT_STATE_ESTABLISHED:
		return sl_ct_timeout_tcp_established_ns;
	case SL_CT_STATE_FIN:
		return sl_ct_timeout_tcp_fin_ns;
	case SL_CT_STATE_CLOSED:
		return sl_ct_timeout_tcp_rst_ns;
	default: /* NEW (picked up mid-stream) and SYN_SENT: until the backend answers */
		return sl_ct_timeout_tcp_syn_sent_ns;
	}
}

static __always_inline bool sl_ct_expired(const struct sl_ct_value4 *val, __u8 proto, __u64 now)
{
	return sl_idle_longer_than(now, val->last_seen_ns, sl_ct_timeout_ns(proto, val->state));
}

/* The TCP state after a packet with flags; reply: the packet goes backend -> client. */
static __always_inline __u8 sl_ct_next_state(__u8 proto, __u8 state, __u8 flags, bool reply)
{
	if (proto != IPPROTO_TCP)
		return state;
	if (flags & SL_TCP_FLAG_RST)
		return SL_CT_STATE_CLOSED;
	if (state == SL_CT_STATE_CLOSED || state == SL_CT_STATE_FIN)
		return state;
	if (flags & SL_TCP_FLAG_FIN)
		return SL_CT_STATE_FIN;
	if (flags & SL_TCP_FLAG_SYN) {
		if (!(flags & SL_TCP_FLAG_ACK))
			return !reply && state == SL_CT_STATE_NEW ? SL_CT_STATE_SYN_SENT : state;
		return reply && state <= SL_CT_STATE_SYN_SENT ? SL_CT_STATE_ESTABLISHED : state;
	}
	/* A flow picked up mid-stream is established once the backend answers. */
	if (reply && state == SL_CT_STATE_NEW)
		return SL_CT_STATE_ESTABLISHED;
	return state;
}

/* A client's SYN without ACK: opens a connection (possibly reusing a closed flow's tuple). */
static __always_inline bool sl_tcp_is_open(__u8 proto, __u8 flags)
{
	return proto == IPPROTO_TCP &&
	       (flags & (SL_TCP_FLAG_SYN | SL_TCP_FLAG_ACK)) == SL_TCP_FLAG_SYN;
}

/* The key of the other entry of the flow that key/val belongs to. */
static __always_inline void sl_ct_twin_key4(const struct sl_ct_key4 *key,
					    const struct sl_ct_value4 *val, struct sl_ct_key4 *twin)
{
	bool hairpin = val->flags & SL_CT_F_HAIRPIN;
	bool snat = val->flags & SL_CT_F_SNAT;

	twin->proto = key->proto;
	if (val->type == SL_CT_FORWARD) {
		twin->saddr = val->nat_addr;
		twin->daddr = hairpin || snat ? val->nat_saddr : key->saddr;
		twin->sport = val->nat_port;
		twin->dport = snat ? val->nat_sport : key->sport;
	} else {
		twin->saddr = hairpin ? key->saddr : snat ? val->nat_saddr : key->daddr;
		twin->daddr = val->nat_addr;
		twin->sport = snat ? val->nat_sport : key->dport;
		twin->dport = val->nat_port;
	}
}

/* The other entry of the flow that key/val belongs to, or NULL when it is gone or unrelated. */
static __always_inline struct sl_ct_value4 *sl_ct_twin4(const struct sl_ct_key4 *key,
							const struct sl_ct_value4 *val)
{
	struct sl_ct_key4 twin = {};
	struct sl_ct_value4 *tv;

	sl_ct_twin_key4(key, val, &twin);
	tv = bpf_map_lookup_elem(&sl_ct4, &twin);
	if (!tv || tv->type == val->type)
		return NULL;
	/* It must translate back to this entry's tuple, not belong to a newer flow. */
	if (val->type == SL_CT_FORWARD) {
		if (tv->nat_addr != key->daddr || tv->nat_port != key->dport)
			return NULL;
	} else if (tv->nat_addr != key->saddr || tv->nat_port != key->sport) {
		return NULL;
	}
	return tv;
}

/*
 * The live entry for a packet's tuple, or NULL: absent, expired (in both directions), or a
 * closed flow whose tuple a new SYN reuses. *now is set to the current time when an entry
 * exists (left alone otherwise: most packets are not service traffic and never need the clock).
 */
static __always_inline struct sl_ct_value4 *sl_ct_lookup4(const struct sl_ct_key4 *key,
							  __u8 tcp_flags, __u64 *now)
{
	struct sl_ct_value4 *val = bpf_map_lookup_elem(&sl_ct4, key);
	struct sl_ct_value4 *tv;

	if (!val)
		return NULL;
	*now = bpf_ktime_get_ns();
	if (val->type == SL_CT_FORWARD && sl_tcp_is_open(key->proto, tcp_flags) &&
	    val->state >= SL_CT_STATE_FIN)
		return NULL;
	if (!sl_ct_expired(val, key->proto, *now))
		return val;
	tv = sl_ct_twin4(key, val);
	if (tv && !sl_ct_expired(tv, key->proto, *now))
		return val;
	return NULL;
}

/* Deletes a flow: entry key/val and its twin, while the twin still translates back to key. */
static __always_inline void sl_ct_delete_flow4(const struct sl_ct_key4 *key,
					       const struct sl_ct_value4 *val)
{
	struct sl_ct_key4 twin = {};

	if (sl_ct_twin4(key, val)) {
		sl_ct_twin_key4(key, val, &twin);
		bpf_map_delete_elem(&sl_ct4, &twin);
	}
	bpf_map_delete_elem(&sl_ct4, key);
}

/*
 * A client opens a connection straight to an address that is no frontend (fwd: its SYN's tuple).
 * If a finished service flow of the same client port landed on that address:port, its REVERSE
 * entry (kept for the FIN/RST timeout) would match the new connection's SYN-ACK and rewrite its
 * source to the frontend, so the handshake never completes. That flow is over: its two entries
 * go. A live flow's entries stay: the same backend tuple in use twice at once is a genuine clash
 * that no rewrite could resolve.
 */
static __always_inline void sl_ct_forget_finished4(const struct sl_ct_key4 *fwd, __u64 *now)
{
	struct sl_ct_key4 rev = {
		.saddr = fwd->daddr,
		.daddr = fwd->saddr,
		.sport = fwd->dport,
		.dport = fwd->sport,
		.proto = fwd->proto,
	};
	struct sl_ct_value4 *val = bpf_map_lookup_elem(&sl_ct4, &rev);

	if (!val || val->type != SL_CT_REVERSE || (val->flags & SL_CT_F_HAIRPIN))
		return;
	*now = bpf_ktime_get_ns();
	if (val->state < SL_CT_STATE_FIN && !sl_ct_expired(val, rev.proto, *now))
		return;
	sl_ct_delete_flow4(&rev, val);
}

/*
 * Whether the SNAT flow holding tuple key (its REVERSE entry val: backend -> node:port) is over,
 * so its port may go to a new flow: an RST seen, a FIN seen in both directions (each entry flags
 * the FIN its own direction sent: one FIN is a half-close, the other side may still send), or
 * both entries expired (an entry idle in one direction only is still alive). Nothing but a SNAT
 * flow's REVERSE entry is ever reclaimed.
 */
static __always_inline bool sl_ct_snat_over4(const struct sl_ct_key4 *key,
					     const struct sl_ct_value4 *val, __u64 now)
{
	struct sl_ct_value4 *tv;

	if (val->type != SL_CT_REVERSE || !(val->flags & SL_CT_F_SNAT))
		return false;
	if (val->state == SL_CT_STATE_CLOSED)
		return true;
	tv = sl_ct_twin4(key, val);
	if (tv && (val->flags & tv->flags & SL_CT_F_FIN_SEEN))
		return true;
	return sl_ct_expired(val, key->proto, now) && (!tv || sl_ct_expired(tv, key->proto, now));
}

/*
 * Frees SNAT tuple key for a new flow if the flow holding it is over (sl_ct_snat_over4): both
 * its entries are deleted. Returns true when the tuple is free.
 */
static __always_inline bool sl_ct_snat_reclaim4(const struct sl_ct_key4 *key, __u64 now)
{
	struct sl_ct_value4 *val = bpf_map_lookup_elem(&sl_ct4, key);

	if (!val)
		return true;
	if (!sl_ct_snat_over4(key, val, now))
		return false;
	sl_ct_delete_flow4(key, val);
	return true;
}

/* Refreshes the entry for a packet and moves the TCP state of both entries. */
static __always_inline void sl_ct_update4(const struct sl_ct_key4 *key, struct sl_ct_value4 *val,
					  __u8 tcp_flags, __u64 now)
{
	bool reply = val->type == SL_CT_REVERSE;
	__u8 next = sl_ct_next_state(key->proto, val->state, tcp_flags, reply);
	struct sl_ct_value4 *tv;

	val->last_seen_ns = now;
	if (key->proto == IPPROTO_TCP && (tcp_flags & SL_TCP_FLAG_FIN))
		val->flags |= SL_CT_F_FIN_SEEN; /* per direction: see sl_ct_snat_reclaim4 */
	if (next == val->state)
		return;
	tv = sl_ct_twin4(key, val);
	val->state = next;
	if (tv) {
		tv->state = next;
		tv->last_seen_ns = now;
	}
}

/*
 * What a new flow's two entries hold beyond the client's tuple and the backend (see the
 * nat_saddr/nat_sport table in sluice.h). The reply's tuple is be -> src_addr:src_port: the
 * source the forwarded packet carries.
 */
struct sl_ct_new4 {
	__be32 src_addr;  /* the forwarded packet's source: the client, the frontend or this node */
	__be32 fwd_saddr; /* FORWARD nat_saddr */
	__be32 rev_saddr; /* REVERSE nat_saddr */
	__u32 flags;	  /* SL_CT_F_* of both entries */
	__be16 src_port;
	__be16 fwd_sport; /* FORWARD nat_sport */
	__be16 rev_sport; /* REVERSE nat_sport */
	bool exclusive;	  /* the REVERSE tuple must be free (BPF_NOEXIST): -EEXIST otherwise */
};

/*
 * The REVERSE entry of a new flow from the client's tuple fwd: its replies are translated back
 * to fwd's destination (the frontend), towards nat_saddr:nat_sport (as sluice.h's table says).
 */
static __always_inline void sl_ct_reverse_value4(struct sl_ct_value4 *val,
						 const struct sl_ct_key4 *fwd, __u32 svc_id,
						 __u32 flags, __be32 nat_saddr, __be16 nat_sport,
						 __u8 tcp_flags, __u64 now)
{
	*val = (struct sl_ct_value4){
		.created_ns = now,
		.last_seen_ns = now,
		.nat_addr = fwd->daddr,
		.nat_port = fwd->dport,
		.type = SL_CT_REVERSE,
		.state = sl_ct_next_state(fwd->proto, SL_CT_STATE_NEW, tcp_flags, false),
		.nat_saddr = nat_saddr,
		.nat_sport = nat_sport,
		.svc_id = svc_id,
		.flags = flags,
	};
}

/*
 * Creates both entries of a new flow from the client's tuple fwd to backend be, as n says. The
 * REVERSE entry goes in first so a reply never finds its flow half-created. Returns 0, -EEXIST
 * (n->exclusive and the reply tuple is taken) or -SL_DROP_CT_FULL.
 */
static __always_inline int sl_ct_create_flow4(const struct sl_ct_key4 *fwd,
					      const struct sl_backend_value4 *be, __u32 svc_id,
					      const struct sl_ct_new4 *n, __u8 tcp_flags, __u64 now)
{
	struct sl_ct_key4 rev = {
		.saddr = be->addr,
		.daddr = n->src_addr,
		.sport = be->port,
		.dport = n->src_port,
		.proto = fwd->proto,
	};
	struct sl_ct_value4 val;
	int ret;

	sl_ct_reverse_value4(&val, fwd, svc_id, n->flags, n->rev_saddr, n->rev_sport, tcp_flags,
			     now);
	ret = bpf_map_update_elem(&sl_ct4, &rev, &val, n->exclusive ? BPF_NOEXIST : BPF_ANY);
	if (ret == -17 /* EEXIST */ && n->exclusive)
		return ret;
	if (ret < 0)
		return -SL_DROP_CT_FULL;
	val.nat_addr = be->addr;
	val.nat_port = be->port;
	val.nat_saddr = n->fwd_saddr;
	val.nat_sport = n->fwd_sport;
	val.type = SL_CT_FORWARD;
	if (bpf_map_update_elem(&sl_ct4, fwd, &val, BPF_ANY) < 0) {
		bpf_map_delete_elem(&sl_ct4, &rev);
		return -SL_DROP_CT_FULL;
	}
	return 0;
}

/*
 * A pod's flow (tc.bpf.c) from the client's tuple fwd to backend be. hairpin: the client is the
 * backend, so its source is rewritten to the frontend address as well (client port kept).
 */
static __always_inline int sl_ct_create4(const struct sl_ct_key4 *fwd,
					 const struct sl_backend_value4 *be, __u32 svc_id,
					 bool hairpin, __u8 tcp_flags, __u64 now)
{
	struct sl_ct_new4 n = {
		.src_addr = hairpin ? fwd->daddr : fwd->saddr,
		.src_port = fwd->sport,
		.fwd_saddr = hairpin ? fwd->daddr : 0,
		.rev_saddr = hairpin ? fwd->daddr : 0,
		.flags = hairpin ? SL_CT_F_HAIRPIN : 0,
	};

	return sl_ct_create_flow4(fwd, be, svc_id, &n, tcp_flags, now);
}

/*
 * An external flow (host.bpf.c) from the client's tuple fwd to backend be, flagged
 * SL_CT_F_EXTERNAL. snat_addr 0: DNAT only, the backend sees the client. Otherwise the source is
 * rewritten to snat_addr:snat_port and the REVERSE entry (backend -> snat_addr:snat_port) keeps
 * the client to restore; it is inserted only if free, so an allocated SNAT tuple is never taken
 * from a live flow: -EEXIST tells the caller to try another port. Returns 0, -EEXIST or
 * -SL_DROP_CT_FULL.
 */
static __always_inline int sl_ct_create_external4(const struct sl_ct_key4 *fwd,
						  const struct sl_backend_value4 *be, __u32 svc_id,
						  __be32 snat_addr, __be16 snat_port,
						  __u8 tcp_flags, __u64 now)
{
	bool snat = snat_addr != 0;
	struct sl_ct_new4 n = {
		.src_addr = snat ? snat_addr : fwd->saddr,
		.src_port = snat ? snat_port : fwd->sport,
		.fwd_saddr = snat_addr,
		.fwd_sport = snat ? snat_port : 0,
		.rev_saddr = snat ? fwd->saddr : 0,
		.rev_sport = snat ? fwd->sport : 0,
		.flags = SL_CT_F_EXTERNAL | (snat ? SL_CT_F_SNAT : 0),
		.exclusive = snat,
	};

	return sl_ct_create_flow4(fwd, be, svc_id, &n, tcp_flags, now);
}

/*
 * Tunnel and DSR modes, the ingress node: an external flow from the client's tuple fwd to backend
 * be on node peer, carried there through the tunnel with the client's address and port
 * untouched. dsr: the backend's node answers the client itself (the REVERSE entry then only
 * serves dumps and flushes: no reply comes back here).
 */
static __always_inline int sl_ct_create_tunnel4(const struct sl_ct_key4 *fwd,
						const struct sl_backend_value4 *be, __u32 svc_id,
						__be32 peer, bool dsr, __u8 tcp_flags, __u64 now)
{
	struct sl_ct_new4 n = {
		.src_addr = fwd->saddr,
		.src_port = fwd->sport,
		.fwd_saddr = peer,
		.rev_saddr = peer,
		.flags = SL_CT_F_EXTERNAL | SL_CT_F_TUNNEL | (dsr ? SL_CT_F_DSR : 0),
	};

	return sl_ct_create_flow4(fwd, be, svc_id, &n, tcp_flags, now);
}

/*
 * Tunnel and DSR modes, the backend's node: a flow that arrived tunnelled from node peer (fwd:
 * client -> backend, as the ingress node translated it). Nothing is translated on the way in
 * (the backend is its own "frontend"). Tunnel (frontend_addr 0): the entries remember peer,
 * where the replies go back. DSR: the REVERSE entry remembers the frontend the replies leave
 * from, straight to the client. The service is the ingress node's business: svc_id 0.
 */
static __always_inline int sl_ct_create_decap4(const struct sl_ct_key4 *fwd, __be32 peer,
					       __be32 frontend_addr, __be16 frontend_port,
					       __u8 tcp_flags, __u64 now)
{
	struct sl_backend_value4 be = {.addr = fwd->daddr, .port = fwd->dport};
	bool dsr = frontend_addr != 0;
	struct sl_ct_new4 n = {
		.src_addr = fwd->saddr,
		.src_port = fwd->sport,
		.fwd_saddr = peer,
		.rev_saddr = dsr ? frontend_addr : peer,
		.rev_sport = dsr ? frontend_port : 0,
		.flags = SL_CT_F_EXTERNAL | SL_CT_F_DECAP | (dsr ? SL_CT_F_DSR : 0),
	};

	return sl_ct_create_flow4(fwd, &be, 0, &n, tcp_flags, now);
}

/*
 * The first steps of every TC entry program: parses the frame into *pkt and looks its tuple up
 * (sl_ct_lookup4). Returns the parse result; on SL_PARSE_OK, *key is the packet's tuple and *ct
 * its live entry or NULL.
 */
static __always_inline enum sl_parse_result
sl_ct_parse_lookup4(struct __sk_buff *skb, struct sl_pkt4 *pkt, struct sl_ct_key4 *key,
		    struct sl_ct_value4 **ct, __u64 *now)
{
	enum sl_parse_result ret = sl_parse4(skb, pkt);

	if (ret != SL_PARSE_OK)
		return ret;
	sl_ct_key_from_pkt4(pkt, key);
	*ct = sl_ct_lookup4(key, pkt->tcp_flags, now);
	return SL_PARSE_OK;
}

#endif /* SL_LIB_CONNTRACK_H */
