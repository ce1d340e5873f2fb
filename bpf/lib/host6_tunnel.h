/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The IPv6 Tunnel and DSR modes on the host interfaces (lib/tunnel6.h; docs/external-traffic.md,
 * docs/ipv6.md): the bodies of host.bpf.c's two tail-called programs, each walked by the verifier
 * on its own (sl_host6_ingr is near its budget on 5.10 already).
 *
 *  sl_host6_tun (SL_HOST6_TUNNEL), reached from sl_host6_ingr and sl_host6_egr (SL_HOST6_WRAP):
 *    - ingress node, a client's packet of a tunnelled flow (FORWARD, TUNNEL; its entries made by
 *      sl_host_tunnel_alloc6): too large once wrapped -> ICMPv6 Packet Too Big to the client from
 *      the frontend (counted, tunnel_mtu); else DNAT to the backend (the client's address kept),
 *      the SYN's MSS clamped (Tunnel), hop limit - 1, wrapped for the backend's node (with the
 *      frontend in the GUE header: DSR) and sent (fib.h);
 *    - backend's node, a local pod's reply (REVERSE, DECAP): Tunnel: too large -> Packet Too Big
 *      to the pod (from the client, into this node's input path); else the SYN-ACK's MSS clamped
 *      and the reply wrapped back to the ingress node. DSR: its source becomes the frontend and
 *      it goes straight to the client (the kernel routed it here for that), the SYN-ACK's MSS
 *      clamped (it bounds what the client sends through the tunnel);
 *    - an ICMPv6 error about a tunnelled flow (sl_host_tunnel_icmp6): ingress node, a network's
 *      error about a reply, quoting the backend then wrapped for its node; backend's node, a
 *      Tunnel pod's (or the node's) error about a request, wrapped back untouched.
 *  sl_host6_decap (SL_HOST6_DECAP), reached from the entry program for IPv6 UDP to the tunnel
 *  port: unwrapped (only from a node of sl_tunnel_nodes6), then
 *    - the reply of a flow this node tunnelled (REVERSE, TUNNEL): source back to the frontend,
 *      sent to the client;
 *    - a client's packet for a local pod: DECAP entries remember the ingress node (Tunnel) or
 *      the frontend (DSR); the kernel routes it to the pod, which sees the client's address.
 *    - an ICMPv6 error the flow's backend node wrapped back (sl_host_icmp_unwrapped6): quoting
 *      client -> frontend, sent to the client;
 *    - anything else unwrapped (an ICMPv6 error about a DECAP flow, translated by the ingress
 *      node already): to the kernel untouched, which routes it to the pod.
 */
#ifndef SL_LIB_HOST6_TUNNEL_H
#define SL_LIB_HOST6_TUNNEL_H

#include "host6.h"
#include "tunnel6.h"
#include "mss.h"
#include "reject6.h"

/* What wrapping a rewritten packet needs (sl_host_tunnel_wrap6), from the step that rewrote it. */
struct sl_tunnel6_plan {
	__be32 peer[4];		 /* the far end */
	__be32 frontend_addr[4]; /* DSR: the GUE header's frontend */
	__be16 frontend_port;
	__be16 udp_sport;
	__u8 dsr;
	__u8 route_inner; /* forwarded by this node as a router: hop limit - 1 */
	__u8 too_big_in;  /* SL_HOST6_TOO_BIG: Packet Too Big into this node (to a local pod) */
	__u8 pad;
	__u32 too_big_mtu; /* SL_HOST6_TOO_BIG: the MTU to report */
	__u32 l4_off;	   /* a TCP SYN's header, whose MSS is clamped to mss (0: none) */
	__u32 mss;
};

/* Further steps of sl_host6_tun (beside enum sl_host6_next's). */
#define SL_HOST6_TOO_BIG 0x105 /* answer with Packet Too Big */
#define SL_HOST6_DSR_OUT 0x106 /* a DSR reply, rewritten: MSS clamped, then passed */

/*
 * The clamp of a SYN's MSS is asked for (plan), not made, by the steps that parse: a step of its
 * own, its option walk is verified once, not once per state the extension-header walk leaves.
 */
static __always_inline void sl_tunnel_plan_mss6(struct sl_tunnel6_plan *plan,
						const struct sl_pkt6 *pkt, __u32 overhead)
{
	if (pkt->proto == IPPROTO_TCP && (pkt->tcp_flags & SL_TCP_FLAG_SYN)) {
		plan->l4_off = pkt->l4_off;
		plan->mss = sl_tunnel_mss6(overhead);
	}
}

/* A client's packet of a tunnelled flow, at the ingress node (FORWARD, TUNNEL). */
static __always_inline int sl_host_tunnel_fwd6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					       const struct sl_ct_key6 *key,
					       struct sl_ct_value6 *ct, __u64 now,
					       struct sl_tunnel6_plan *plan)
{
	__u32 overhead =
		(ct->flags & SL_CT_F_DSR) ? SL_TUNNEL_V6_DSR_OVERHEAD : SL_TUNNEL_V6_OVERHEAD;
	__be32 backend_addr[4];
	__be16 backend_port = ct->nat_port;

	plan->dsr = (ct->flags & SL_CT_F_DSR) != 0;
	plan->route_inner = 1;
	sl_addr6_copy(plan->peer, ct->nat_saddr);
	sl_addr6_copy(backend_addr, ct->nat_addr);
	sl_ct_update6(key, ct, pkt->tcp_flags, now);
	/* DSR: this node never sees the SYN-ACK; the client's first bare ACK ends the handshake. */
	if (plan->dsr && ct->state < SL_CT_STATE_ESTABLISHED && pkt->proto == IPPROTO_TCP &&
	    (pkt->tcp_flags & (SL_TCP_FLAG_SYN | SL_TCP_FLAG_ACK | SL_TCP_FLAG_RST)) ==
		    SL_TCP_FLAG_ACK)
		ct->state = SL_CT_STATE_ESTABLISHED;
	/* Too large once wrapped: the client hears it from the frontend, before any rewrite. */
	if (sl_tunnel_too_big6(skb, overhead)) {
		plan->too_big_mtu = sl_tunnel_mtu - overhead;
		return SL_HOST6_TOO_BIG;
	}
	sl_addr6_copy(plan->frontend_addr, key->daddr);
	plan->frontend_port = key->dport;
	plan->udp_sport = sl_tunnel_sport6(key->saddr, key->daddr, key->sport, key->dport);
	if (sl_nat_dst6(skb, pkt, backend_addr, backend_port) < 0)
		return sl_rewrite_failed();
	/* A DSR client's MSS bounds the backend's segments, which go to it unwrapped. */
	if (!plan->dsr)
		sl_tunnel_plan_mss6(plan, pkt, SL_TUNNEL_V6_OVERHEAD);
	return SL_HOST6_WRAP;
}

/* A local pod's reply to a flow that came through the tunnel (REVERSE, DECAP). */
static __always_inline int sl_host_tunnel_reply6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
						 const struct sl_ct_key6 *key,
						 struct sl_ct_value6 *ct, __u64 now,
						 struct sl_tunnel6_plan *plan)
{
	__be32 frontend_addr[4];
	__be16 frontend_port = ct->nat_sport;
	bool dsr = ct->flags & SL_CT_F_DSR;

	sl_addr6_copy(frontend_addr, ct->nat_saddr);
	sl_ct_update6(key, ct, pkt->tcp_flags, now);
	if (dsr) {
		sl_tunnel_plan_mss6(plan, pkt, SL_TUNNEL_V6_DSR_OVERHEAD);
		if (sl_nat_src6(skb, pkt, frontend_addr, frontend_port) < 0)
			return sl_rewrite_failed();
		return SL_HOST6_DSR_OUT;
	}
	/*
	 * Too large to wrap back: the pod hears it as from a router on its path, Packet Too Big
	 * from the client's address into this node's input path, which routes it to the pod (as
	 * IPv4's sl_host_tunnel_back).
	 */
	if (sl_tunnel_too_big6(skb, SL_TUNNEL_V6_OVERHEAD)) {
		plan->too_big_mtu = sl_tunnel_mtu - SL_TUNNEL_V6_OVERHEAD;
		plan->too_big_in = 1;
		return SL_HOST6_TOO_BIG;
	}
	sl_addr6_copy(plan->peer, frontend_addr); /* nat_saddr: the ingress node */
	plan->udp_sport = sl_tunnel_sport6(key->saddr, key->daddr, key->sport, key->dport);
	sl_tunnel_plan_mss6(plan, pkt, SL_TUNNEL_V6_OVERHEAD);
	return SL_HOST6_WRAP;
}

/* The first step of sl_host6_tun: the packet's flow, and its rewrite; plan for the wrapping. */
static __noinline int sl_host_tunnel_prep6(struct __sk_buff *skb, struct sl_tunnel6_plan *plan)
{
	struct sl_ct_value6 *ct;
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;
	__u64 now = 0;
	int ret;

	ret = sl_parse6(skb, &pkt);
	if (ret == SL_PARSE_SKIP)
		return SL_HOST6_ICMP; /* an ICMPv6 error sl_host6_ingr or _egr sent here */
	if (ret != SL_PARSE_OK)
		return SL_TC_PASS;
	sl_ct_key_from_pkt6(&pkt, &key);
	ct = sl_ct_lookup6(&key, pkt.tcp_flags, &now);
	if (!ct || !(ct->flags & SL_CT_F_EXTERNAL))
		return SL_TC_PASS;
	if (ct->type == SL_CT_FORWARD && (ct->flags & SL_CT_F_TUNNEL))
		return sl_host_tunnel_fwd6(skb, &pkt, &key, ct, now, plan);
	if (ct->type == SL_CT_REVERSE && (ct->flags & SL_CT_F_DECAP))
		return sl_host_tunnel_reply6(skb, &pkt, &key, ct, now, plan);
	return SL_TC_PASS;
}

/*
 * The first step of sl_host6_tun for an ICMPv6 error about a tunnelled flow (e parsed before any
 * rewrite: the mirror of its quote is the flow entry's key), wrapped for the far end like the
 * flow's own packets (the same outer source port), never with the DSR header: the far end hands
 * an unwrapped error to its kernel, or translates it, whatever the wrapping (as IPv4's
 * sl_host_icmp_tunnel).
 *  - ingress node, quoting frontend:fport -> client:cport (a reply; e.g. a router's Packet Too
 *    Big, from sl_host_icmp_in6): the FORWARD entry gives the backend; the quote's source becomes
 *    backend:bport (the outer destination, the frontend, the backend too) and the error goes to
 *    the backend's node (nat_saddr), hop limit - 1. That node's kernel routes it to the pod,
 *    which matches it to its socket by the quote, now as the pod sent it (sl_host_icmp_unwrapped6
 *    leaves it alone);
 *  - backend's node, quoting client:cport -> backend:bport (a Tunnel flow's request, reported by
 *    the pod or this node for it, from sl_host_icmp_out6): wrapped back to the ingress node
 *    (nat_saddr) untouched; that node knows the frontend and translates it.
 * A Packet Too Big's MTU is kept, as IPv4 keeps fragmentation needed's: it bounds the packet on
 * the path the error reports, which the packet crosses unwrapped (the tunnel's own limit is
 * reported apart, by sl_host_tunnel_fwd6 and sl_host_tunnel_reply6). An error too large to wrap
 * (ICMPv6 errors may be 1280 bytes, the tunnel header adds 48) is dropped and counted
 * (tunnel_mtu): a --tunnel-mtu below 1328 loses the largest.
 */
static __noinline int sl_host_tunnel_icmp6(struct __sk_buff *skb, struct sl_tunnel6_plan *plan)
{
	struct sl_icmp6_err e = {}; /* zeroed: clang copies unset fields, refused */
	struct sl_ct_value6 *ct = sl_icmp6_err_flow(skb, &e);
	__be32 backend_addr[4] = {};
	__be16 backend_port = 0;
	bool fwd;

	if (!ct || !(ct->flags & SL_CT_F_EXTERNAL))
		return SL_TC_PASS;
	fwd = ct->type == SL_CT_FORWARD && (ct->flags & SL_CT_F_TUNNEL);
	if (fwd) {
		sl_addr6_copy(backend_addr, ct->nat_addr);
		backend_port = ct->nat_port;
		plan->route_inner = 1;
	} else if (ct->type != SL_CT_REVERSE ||
		   (ct->flags & (SL_CT_F_DECAP | SL_CT_F_DSR)) != SL_CT_F_DECAP) {
		return SL_TC_PASS;
	}
	sl_addr6_copy(plan->peer, ct->nat_saddr);
	plan->udp_sport = sl_tunnel_sport6(e.in_daddr, e.in_saddr, e.in_dport, e.in_sport);
	if (sl_tunnel_too_big6(skb, SL_TUNNEL_V6_OVERHEAD)) {
		sl_count_drop(SL_DROP_TUNNEL_MTU);
		return TC_ACT_SHOT;
	}
	if (fwd && sl_host_icmp_nat6(skb, &e, false, backend_addr, backend_port) < 0)
		return sl_rewrite_failed();
	return SL_HOST6_WRAP;
}

/* The second step: wraps the rewritten packet as planned and sends it to the far end. */
static __noinline int sl_host_tunnel_wrap6(struct __sk_buff *skb,
					   const struct sl_tunnel6_plan *plan)
{
	const struct sl_node_config6 *cfg = sl_node_config6_get();
	__be32 self[4];

	if (!cfg || sl_addr6_is_zero(cfg->snat_addr)) {
		sl_count_drop(SL_DROP_NO_ROUTE);
		return TC_ACT_SHOT;
	}
	sl_addr6_copy(self, cfg->snat_addr);
	if (plan->route_inner && sl_hop_dec6(skb, ETH_HLEN) < 0) {
		sl_count_drop(SL_DROP_TTL);
		return TC_ACT_SHOT;
	}
	if (sl_tunnel_encap6(skb, self, plan->peer, plan->udp_sport, plan->dsr, plan->frontend_addr,
			     plan->frontend_port) < 0)
		return sl_rewrite_failed();
	return sl_fib_send6(skb, self, plan->peer);
}

/*
 * A packet too large to wrap (the packet as it arrived: before any rewrite), answered with
 * ICMPv6 Packet Too Big and counted (tunnel_mtu). A step of its own: the error's buffer would
 * not fit beside the rewrite's.
 */
static __noinline int sl_host_tunnel_too_big6(struct __sk_buff *skb,
					      const struct sl_tunnel6_plan *plan)
{
	struct sl_pkt6 pkt;

	sl_count_drop(SL_DROP_TUNNEL_MTU);
	if (sl_parse6(skb, &pkt) != SL_PARSE_OK)
		return TC_ACT_SHOT;
	return sl_reject_too_big6(skb, &pkt, plan->too_big_mtu,
				  plan->too_big_in ? BPF_F_INGRESS : 0);
}

/* The MSS clamp a step asked for (mss.h). */
static __noinline int sl_host_tunnel_mss6(struct __sk_buff *skb, __u32 l4_off, __u32 mss)
{
	return sl_tcp_clamp_mss_at(skb, l4_off, l4_off + offsetof(struct tcphdr, check), mss);
}

/* sl_host6_tun's body. */
static __always_inline int sl_host_tunnel6(struct __sk_buff *skb)
{
	struct sl_tunnel6_plan plan = {};
	int ret = sl_host_tunnel_prep6(skb, &plan);

	if (ret == SL_HOST6_ICMP)
		ret = sl_host_tunnel_icmp6(skb, &plan);
	if (ret == SL_HOST6_TOO_BIG)
		return sl_host_tunnel_too_big6(skb, &plan);
	if (ret != SL_HOST6_WRAP && ret != SL_HOST6_DSR_OUT)
		return ret;
	if (plan.mss && sl_host_tunnel_mss6(skb, plan.l4_off, plan.mss) < 0)
		return sl_rewrite_failed();
	if (ret == SL_HOST6_DSR_OUT)
		return SL_TC_PASS;
	return sl_host_tunnel_wrap6(skb, &plan);
}

/* The outer headers off (lib/tunnel6.h): SL_TUNNEL_INNER, _NONE or _DROP. */
static __noinline int sl_host_unwrap6(struct __sk_buff *skb, struct sl_tunnel6_in *in)
{
	return sl_tunnel_decap6(skb, in);
}

/*
 * Whether this node's live FORWARD entry ct of an unwrapped flow still says what the packet
 * says: the same ingress node, the same mode and, for DSR, the same frontend (as
 * sl_host_decap_current).
 */
static __always_inline bool sl_host_decap_current6(const struct sl_ct_key6 *key,
						   const struct sl_ct_value6 *ct,
						   const struct sl_tunnel6_in *in)
{
	struct sl_ct_value6 *rev;

	if (ct->type != SL_CT_FORWARD || !(ct->flags & SL_CT_F_DECAP) ||
	    !sl_addr6_eq(ct->nat_saddr, in->peer))
		return false;
	if (!(ct->flags & SL_CT_F_DSR))
		return !in->dsr;
	if (!in->dsr)
		return false;
	rev = sl_ct_twin6(key, ct);
	return rev && sl_addr6_eq(rev->nat_saddr, in->frontend_addr) &&
	       rev->nat_sport == in->frontend_port;
}

/* An unwrapped packet (see the top of this file). */
static __noinline int sl_host_from_tunnel6(struct __sk_buff *skb, const struct sl_tunnel6_in *in)
{
	struct sl_backend_value6 be = {};
	__be32 frontend_addr[4];
	struct sl_ct_value6 *ct;
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;
	__be16 frontend_port;
	__u64 now = 0;
	int ret;

	ret = sl_parse6(skb, &pkt);
	if (ret == SL_PARSE_SKIP)
		return SL_HOST6_ICMP;
	if (ret != SL_PARSE_OK)
		return SL_TC_PASS;
	sl_ct_key_from_pkt6(&pkt, &key);
	ct = sl_ct_lookup6(&key, pkt.tcp_flags, &now);
	if (ct && ct->type == SL_CT_REVERSE && (ct->flags & SL_CT_F_TUNNEL) && !in->dsr) {
		sl_addr6_copy(frontend_addr, ct->nat_addr);
		frontend_port = ct->nat_port;
		sl_ct_update6(&key, ct, pkt.tcp_flags, now);
		if (sl_nat_src6(skb, &pkt, frontend_addr, frontend_port) < 0)
			return sl_rewrite_failed();
		return SL_HOST6_SEND;
	}
	if (ct && sl_host_decap_current6(&key, ct, in)) {
		sl_ct_update6(&key, ct, pkt.tcp_flags, now);
		return SL_TC_PASS;
	}
	/* New here, or now from another ingress node or frontend: (re)created as it arrived. */
	sl_addr6_copy(be.addr, key.daddr);
	be.port = key.dport;
	if (sl_ct_create_tunnelled6(&key, &be, 0,
				    SL_CT_F_EXTERNAL | SL_CT_F_DECAP | (in->dsr ? SL_CT_F_DSR : 0),
				    in->peer, in->dsr ? in->frontend_addr : in->peer,
				    in->dsr ? in->frontend_port : 0, pkt.tcp_flags,
				    now ? now : bpf_ktime_get_ns()) < 0) {
		sl_count_drop(SL_DROP_CT_FULL);
		return TC_ACT_SHOT;
	}
	return SL_TC_PASS;
}

/*
 * An unwrapped ICMPv6 error (as IPv4's sl_host_icmp_in with in->peer): quoting client:cport ->
 * backend:bport, sent back by the backend's node about a Tunnel flow's request (the pod's port
 * unreachable, or its node's own error, untranslated: sl_host_tunnel_icmp6). The REVERSE entry,
 * whose node must be the sender, gives the frontend; the quote becomes client:cport ->
 * frontend:fport (and the outer source the frontend when the pod sent it) and the error goes to
 * the client. Anything else (a DECAP flow's error at the backend's node, translated by the
 * ingress node already) goes to the kernel untouched, which routes it to the pod.
 */
static __noinline int sl_host_icmp_unwrapped6(struct __sk_buff *skb, const struct sl_tunnel6_in *in)
{
	struct sl_icmp6_err e = {}; /* zeroed: clang copies unset fields, refused */
	struct sl_ct_value6 *ct = sl_icmp6_err_flow(skb, &e);
	__be32 frontend_addr[4];
	__be16 frontend_port;

	if (!ct || ct->type != SL_CT_REVERSE ||
	    (ct->flags & (SL_CT_F_EXTERNAL | SL_CT_F_TUNNEL | SL_CT_F_DECAP)) !=
		    (SL_CT_F_EXTERNAL | SL_CT_F_TUNNEL) ||
	    !sl_addr6_eq(ct->nat_saddr, in->peer))
		return SL_TC_PASS;
	sl_addr6_copy(frontend_addr, ct->nat_addr);
	frontend_port = ct->nat_port;
	if (sl_host_icmp_nat6(skb, &e, true, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	return SL_HOST6_SEND;
}

/* sl_host6_decap's body. */
static __always_inline int sl_host_decap6(struct __sk_buff *skb)
{
	struct sl_tunnel6_in in = {};
	int ret = sl_host_unwrap6(skb, &in);

	if (ret == SL_TUNNEL_NONE)
		return SL_TC_PASS;
	if (ret != SL_TUNNEL_INNER)
		return TC_ACT_SHOT;
	ret = sl_host_from_tunnel6(skb, &in);
	if (ret == SL_HOST6_ICMP)
		ret = sl_host_icmp_unwrapped6(skb, &in);
	if (ret == SL_HOST6_SEND)
		return sl_host_send6(skb);
	return ret;
}

#endif /* SL_LIB_HOST6_TUNNEL_H */
