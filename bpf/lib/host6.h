/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * External traffic in IPv6 on the host interfaces: host.bpf.c's IPv6 programs (sl_host6_ingr,
 * sl_host6_egr, reached by tail call from the entry programs) run these. The IPv4 rules of
 * host.bpf.c over sl_frontends6 and sl_ct6 (docs/ipv6.md, docs/external-traffic.md).
 *
 *  ingress: a new flow to a frontend flagged SL_SVC_F_EXTERNAL picks a backend (lb6.h: the Local
 *    set for eTP=Local; none there -> drop, none at all -> TCP RST / ICMPv6 port unreachable;
 *    eTP=Cluster: among all endpoints, as IPv4);
 *    a backend on this node: DNAT only, the kernel routes it to the pod, which sees the client;
 *    on another node: DNAT and SNAT to this node's IPv6 address and a port of the SNAT range
 *    (snat6.h), sent straight out (fib.h: its source is now ours) — SNAT mode, or in Tunnel
 *    and DSR modes when the backend's node has no known IPv6 address; otherwise the flow's
 *    entries are made here (sl_host_tunnel_alloc6) and the packet goes on to sl_host6_tun
 *    (lib/host6_tunnel.h: the IPv6 tunnel), as later packets of the flow do;
 *    later packets (FORWARD entry flagged EXTERNAL): the same rewrite;
 *    a remote backend's reply (REVERSE, EXTERNAL|SNAT): back to frontend -> client, sent out.
 *    an ICMPv6 error about an external flow (destination unreachable, Packet Too Big, time
 *    exceeded: lib/icmp6.h): translated to what the backend (or this node) sent, as IPv4's
 *    sl_host_icmp_in (sl_host_icmp_in6); a tunnelled flow's goes on to sl_host6_tun;
 *  egress: a local backend's reply (REVERSE, EXTERNAL): source back to the frontend; an ICMPv6
 *    error the backend (or this node for it) sends about the flow quotes the frontend
 *    (sl_host_icmp_out6); a Tunnel flow's goes on to sl_host6_tun, wrapped back.
 *
 * loadBalancerSourceRanges (sl_src_ranges6) and Maglev (lib/maglev.h) as in IPv4. Extension
 * headers are walked as on the TC path (lib/parse6.h), in a quote too. NDP and every other
 * ICMPv6 message pass untouched.
 */
#ifndef SL_LIB_HOST6_H
#define SL_LIB_HOST6_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "lb.h"
#include "lb6.h"
#include "src_ranges.h"
#include "maglev.h"
#include "parse6.h"
#include "nat6.h"
#include "conntrack6.h"
#include "reject6.h"
#include "verdict.h"
#include "ext_counters.h"
#include "snat6.h"
#include "fib.h"
#include "icmp6.h"
#include "tunnel6.h"

/*
 * The IPv6 path is split into calls of their own (BPF-to-BPF, each its own stack frame), all
 * made from sl_host_ingress6's top level, never nested: inlined into one function, or called one
 * below the other, the IPv6 addresses, keys and entries exceed the 512-byte BPF stack (the
 * verifier adds up the frames of a chain of calls). A step that needs another asks for it with
 * one of these codes (TC verdicts are small: -1 to 8); pkt and key are then parsed again, and
 * a new flow's choice travels in struct sl_host6_pick. (One call is nested, on purpose and
 * small: an ICMPv6 error step's rewrite, sl_host_icmp_nat6.)
 */
enum sl_host6_next {
	SL_HOST6_NEW_FLOW = 0x100, /* no entry: a new flow to a frontend, perhaps */
	SL_HOST6_SEND = 0x101,	   /* rewritten, its source ours: send it out (sl_host_send6) */
	SL_HOST6_SNAT = 0x102,	   /* a new flow's backend is remote: sl_host_snat_alloc6, _flow6 */
	SL_HOST6_ICMP = 0x103,	   /* no TCP/UDP: an ICMPv6 error about a flow, perhaps */
	SL_HOST6_WRAP = 0x104,	   /* a tunnelled flow's packet: the SL_HOST6_TUNNEL program's */
};

/* Parses the IPv6 frame and looks its tuple up; false when it is no TCP/UDP we translate. */
static __always_inline bool sl_host_parse6(struct __sk_buff *skb, struct sl_pkt6 *pkt,
					   struct sl_ct_key6 *key)
{
	if (sl_parse6(skb, pkt) != SL_PARSE_OK)
		return false;
	sl_ct_key_from_pkt6(pkt, key);
	return true;
}

/*
 * Sends the rewritten IPv6 packet out as a router would (fib.h): its addresses read back from
 * its header.
 */
static __noinline int sl_host_send6(struct __sk_buff *skb)
{
	__be32 addrs[8];

	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, saddr), addrs,
			       sizeof(addrs)) < 0)
		return sl_rewrite_failed();
	return sl_fib_redirect6(skb, ETH_HLEN, &addrs[0], &addrs[4]);
}

/* A packet of a tracked external IPv6 flow from its client: to the flow's backend. */
static __always_inline int sl_host_forward6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					    const struct sl_ct_key6 *key, struct sl_ct_value6 *ct,
					    __u64 now)
{
	__be32 backend_addr[4], snat_addr[4];
	__be16 backend_port = ct->nat_port, snat_port = ct->nat_sport;
	bool snat = ct->flags & SL_CT_F_SNAT;

	sl_addr6_copy(backend_addr, ct->nat_addr);
	sl_addr6_copy(snat_addr, ct->nat_saddr);
	sl_ct_update6(key, ct, pkt->tcp_flags, now);
	sl_count_service(ct->svc_id, skb->len, false, false);
	if (sl_nat_dst6(skb, pkt, backend_addr, backend_port) < 0)
		return sl_rewrite_failed();
	if (!snat)
		return SL_TC_PASS; /* the kernel routes it to the pod */
	if (sl_nat_src6(skb, pkt, snat_addr, snat_port) < 0)
		return sl_rewrite_failed();
	return SL_HOST6_SEND;
}

/* A remote backend's reply to an SNATed flow: backend -> node:sport becomes frontend -> client. */
static __always_inline int sl_host_snat_reply6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					       const struct sl_ct_key6 *key,
					       struct sl_ct_value6 *ct, __u64 now)
{
	__be32 frontend_addr[4], client_addr[4];
	__be16 frontend_port = ct->nat_port, client_port = ct->nat_sport;

	sl_addr6_copy(frontend_addr, ct->nat_addr);
	sl_addr6_copy(client_addr, ct->nat_saddr);
	sl_ct_update6(key, ct, pkt->tcp_flags, now);
	if (sl_nat_src6(skb, pkt, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	if (sl_nat_dst6(skb, pkt, client_addr, client_port) < 0)
		return sl_rewrite_failed();
	return SL_HOST6_SEND;
}

/*
 * A packet of a tracked flow (its own entry only: a pod flow's reply is the pod programs'), or
 * SL_HOST6_NEW_FLOW when its tuple has none.
 */
static __noinline int sl_host_tracked6(struct __sk_buff *skb)
{
	struct sl_ct_value6 *ct;
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;
	__u64 now = 0;
	int ret;

	ret = sl_parse6(skb, &pkt);
	if (ret == SL_PARSE_SKIP)
		return SL_HOST6_ICMP;
	if (ret != SL_PARSE_OK)
		return SL_TC_PASS;
	sl_ct_key_from_pkt6(&pkt, &key);
	ct = sl_ct_lookup6(&key, pkt.tcp_flags, &now);
	if (!ct)
		return SL_HOST6_NEW_FLOW;
	if (!(ct->flags & SL_CT_F_EXTERNAL) || (ct->flags & SL_CT_F_DECAP))
		return SL_TC_PASS; /* DECAP: a tunnelled flow's packet not through the tunnel */
	if (ct->type == SL_CT_FORWARD && (ct->flags & SL_CT_F_TUNNEL)) {
		sl_count_service(ct->svc_id, skb->len, false, false);
		return SL_HOST6_WRAP; /* updated, rewritten and wrapped there */
	}
	if (ct->type == SL_CT_FORWARD)
		return sl_host_forward6(skb, &pkt, &key, ct, now);
	if (ct->flags & SL_CT_F_SNAT)
		return sl_host_snat_reply6(skb, &pkt, &key, ct, now);
	return SL_TC_PASS;
}

/* What sl_host_new_flow6 chose for a new flow, for the step after it (in sl_host_ingress6's frame).
 */
struct sl_host6_pick {
	struct sl_backend_value6 be;
	struct sl_ct_key6 key; /* the flow's tuple, for the SNAT allocation (no parse there) */
	struct sl_ext_flow6 f; /* svc_id, tcp_flags, now; the SNAT source once allocated */
	__u32 svc_flags;
	int refused; /* no backend can take the flow: the SL_DROP_* reason */
};

/*
 * No usable backend (pick->refused): reject when the service has none, drop for eTP=Local (as
 * sl_host_refuse).
 */
static __noinline int sl_host_refuse6(struct __sk_buff *skb, const struct sl_host6_pick *pick)
{
	struct sl_pkt6 pkt;

	sl_count_drop(pick->refused);
	sl_count_service(pick->f.svc_id, 0, false, true);
	sl_count_kind(pick->svc_flags, 0, false, true);
	if (pick->refused != SL_DROP_NO_BACKEND || sl_parse6(skb, &pkt) != SL_PARSE_OK)
		return TC_ACT_SHOT;
	return sl_reject6(skb, &pkt);
}

/*
 * The first packet of an external IPv6 flow, if it goes to an external frontend:
 * loadBalancerSourceRanges (sl_src_ranges6), then the backend by Maglev as IPv4 (lib/maglev.h;
 * the Local set and blocks without a table at random). A local backend's flow is created and
 * DNATed here; a remote one is left to sl_host_snat_flow6 (SL_HOST6_SNAT).
 */
static __noinline int sl_host_new_flow6(struct __sk_buff *skb, struct sl_host6_pick *pick)
{
	struct sl_service_value *svc;
	struct sl_ext_flow6 f = {};
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;
	int ret;

	if (!sl_host_parse6(skb, &pkt, &key))
		return SL_TC_PASS;
	svc = sl_lookup_frontend6(pkt.daddr, pkt.dport, pkt.proto);
	if (!svc || !(svc->flags & SL_SVC_F_EXTERNAL))
		return SL_TC_PASS;
	if (!sl_src_range_allows6(svc, pkt.saddr)) {
		sl_count_drop(SL_DROP_SRC_RANGE);
		sl_count_kind(svc->flags, 0, false, true);
		return TC_ACT_SHOT;
	}
	pick->f.svc_id = svc->svc_id;
	pick->svc_flags = svc->flags;
	ret = sl_maglev_select_backend6(svc, pkt.saddr, pkt.sport, pkt.proto, &pick->be);
	if (ret < 0) {
		pick->refused = -ret;
		return TC_ACT_SHOT;
	}
	if (!(pick->be.flags & SL_BE_F_LOCAL)) {
		pick->key = key;
		pick->f.tcp_flags = pkt.tcp_flags;
		return SL_HOST6_SNAT;
	}
	f.svc_id = pick->f.svc_id;
	f.tcp_flags = pkt.tcp_flags;
	f.now = bpf_ktime_get_ns();
	ret = sl_ct_create_external6(&key, &pick->be, &f);
	if (ret < 0) {
		sl_count_drop(-ret);
		return TC_ACT_SHOT;
	}
	sl_count_service(pick->f.svc_id, skb->len, true, false);
	sl_count_kind(pick->svc_flags, skb->len, true, false);
	if (sl_nat_dst6(skb, &pkt, pick->be.addr, pick->be.port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS; /* the kernel routes it to the pod */
}

/*
 * Tunnel and DSR modes: a new flow to the remote backend pick->be goes through the IPv6 tunnel to
 * the backend's node (its entries made here, the packet wrapped by the SL_HOST6_TUNNEL program:
 * SL_HOST6_WRAP) when that node's IPv6 address is known and this node has one of its own to send
 * from; otherwise SL_HOST6_SNAT, the SNAT fallback. DSR unless the client is opted out.
 */
static __noinline int sl_host_tunnel_alloc6(struct __sk_buff *skb, struct sl_host6_pick *pick)
{
	const struct sl_node_config6 *cfg = sl_node_config6_get();
	bool dsr;
	int ret;

	if (!sl_tunnel_enabled() || sl_addr6_is_zero(pick->be.node_addr) || !cfg ||
	    sl_addr6_is_zero(cfg->snat_addr) || sl_addr6_eq(cfg->snat_addr, pick->be.node_addr))
		return SL_HOST6_SNAT;
	dsr = sl_dsr_for_client6(pick->key.saddr);
	pick->f.now = bpf_ktime_get_ns();
	ret = sl_ct_create_tunnelled6(&pick->key, &pick->be, pick->f.svc_id,
				      SL_CT_F_EXTERNAL | SL_CT_F_TUNNEL | (dsr ? SL_CT_F_DSR : 0),
				      pick->be.node_addr, pick->be.node_addr, 0, pick->f.tcp_flags,
				      pick->f.now);
	if (ret < 0) {
		sl_count_drop(-ret);
		return TC_ACT_SHOT;
	}
	sl_count_service(pick->f.svc_id, skb->len, true, false);
	sl_count_kind(pick->svc_flags, skb->len, true, false);
	return SL_HOST6_WRAP;
}

/*
 * A new flow to the remote backend pick->be (eTP=Cluster): its SNAT source, this node's IPv6
 * address and a port of the SNAT range (snat6.h), and its entries; sl_host_snat_flow6 then
 * rewrites the packet. SNAT mode, or the Tunnel and DSR modes' fallback
 * (sl_host_tunnel_alloc6). A step of its own that does not parse the packet: on 5.10 the
 * verifier walks what follows a parse once per state the extension-header walk leaves (offsets
 * it cannot merge), and the allocator behind a parse exceeded its 1M instructions.
 */
static __noinline int sl_host_snat_alloc6(struct sl_host6_pick *pick)
{
	int ret;

	pick->f.now = bpf_ktime_get_ns();
	ret = sl_snat_create6(&pick->key, &pick->be, &pick->f);
	if (ret < 0) {
		sl_count_drop(-ret);
		return TC_ACT_SHOT;
	}
	return SL_HOST6_SNAT;
}

/* The new SNAT flow's first packet (sl_host_snat_alloc6 made its entries): DNAT and SNAT. */
static __noinline int sl_host_snat_flow6(struct __sk_buff *skb, const struct sl_host6_pick *pick)
{
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;

	if (!sl_host_parse6(skb, &pkt, &key))
		return SL_TC_PASS;
	sl_count_service(pick->f.svc_id, skb->len, true, false);
	sl_count_kind(pick->svc_flags, skb->len, true, false);
	if (sl_nat_dst6(skb, &pkt, pick->be.addr, pick->be.port) < 0)
		return sl_rewrite_failed();
	if (sl_nat_src6(skb, &pkt, pick->f.snat_addr, pick->f.snat_port) < 0)
		return sl_rewrite_failed();
	return SL_HOST6_SEND;
}

/*
 * lib/icmp6.h's rewrite of an error's quote (and outer address), a call of its own: its checksum
 * scratch would not fit beside the parse in sl_host_icmp_in6's frame (which makes two rewrites)
 * with sl_host_ingress6's below it.
 */
static __noinline int sl_host_icmp_nat6(struct __sk_buff *skb, const struct sl_icmp6_err *e,
					bool quoted_dst, const __be32 *addr, __be16 port)
{
	return sl_icmp6_err_nat(skb, e, quoted_dst, addr, port);
}

/*
 * An ICMPv6 error arriving at this node about an external flow (lib/icmp6.h), as IPv4's
 * sl_host_icmp_in (its tunnel cases in lib/host6_tunnel.h: sl_host_tunnel_icmp6 for a tunnelled
 * flow's reply, sl_host_icmp_unwrapped6 for what the tunnel brings):
 *  - quoting frontend:fport -> client:cport (a reply this node sent, e.g. Packet Too Big from a
 *    router on the client's path): its FORWARD entry (the mirror of the quote) gives the backend;
 *    the quote's source becomes backend:bport (and the outer destination, the frontend, the
 *    backend). DNAT only: the kernel routes it to the pod, which matches it to its socket by the
 *    quote. SNAT: the quote's destination becomes node:sport too, and it is sent out to the
 *    backend's node, whose kernel reverses its own translation;
 *  - quoting node:sport -> backend:bport (an SNATed request, reported by the backend's side): its
 *    REVERSE entry gives the frontend and the client; the quote becomes client:cport ->
 *    frontend:fport (the outer destination, this node, the client; the outer source the frontend
 *    when the backend itself reports) and it is sent out to the client.
 * A local backend's flow's errors come from the pod side (sl_host_icmp_out6); anything else
 * passes untouched. The outer addresses sl_host_send6 routes by are read back from the header.
 */
static __noinline int sl_host_icmp_in6(struct __sk_buff *skb)
{
	struct sl_icmp6_err e = {}; /* zeroed: clang copies unset fields, refused */
	struct sl_ct_value6 *ct = sl_icmp6_err_flow(skb, &e);
	__be32 a_addr[4], b_addr[4];
	__be16 a_port, b_port;
	bool fwd;

	if (!ct || !(ct->flags & SL_CT_F_EXTERNAL) || (ct->flags & SL_CT_F_DECAP))
		return SL_TC_PASS;
	fwd = ct->type == SL_CT_FORWARD;
	/*
	 * A tunnelled flow's error about a reply: translated and wrapped by the SL_HOST6_TUNNEL
	 * program (sl_host_tunnel_icmp6). Its REVERSE entry's errors come through the tunnel
	 * (sl_host6_decap) or, DSR, from the backend's node straight.
	 */
	if (ct->flags & SL_CT_F_TUNNEL)
		return fwd ? SL_HOST6_WRAP : SL_TC_PASS;
	if (!fwd && !(ct->flags & SL_CT_F_SNAT))
		return SL_TC_PASS;
	sl_addr6_copy(a_addr, ct->nat_addr);
	sl_addr6_copy(b_addr, ct->nat_saddr);
	a_port = ct->nat_port;
	b_port = ct->nat_sport;
	/* FORWARD: the quoted source becomes the backend; REVERSE: the destination the frontend. */
	if (sl_host_icmp_nat6(skb, &e, !fwd, a_addr, a_port) < 0)
		return sl_rewrite_failed();
	if (!(ct->flags & SL_CT_F_SNAT))
		return SL_TC_PASS; /* the kernel routes it to the pod */
	/* FORWARD: the quoted destination becomes node:sport; REVERSE: the source the client. */
	if (sl_host_icmp_nat6(skb, &e, fwd, b_addr, b_port) < 0)
		return sl_rewrite_failed();
	return SL_HOST6_SEND;
}

/* What arrives at a host interface in IPv6 (host.bpf.c's sl_host6_ingr): the steps above. */
static __always_inline int sl_host_ingress6(struct __sk_buff *skb)
{
	struct sl_host6_pick pick = {};
	int ret = sl_host_tracked6(skb);

	if (ret == SL_HOST6_NEW_FLOW) {
		ret = sl_host_new_flow6(skb, &pick);
		if (pick.refused)
			return sl_host_refuse6(skb, &pick);
		if (ret == SL_HOST6_SNAT)
			ret = sl_host_tunnel_alloc6(skb, &pick);
		if (ret == SL_HOST6_SNAT)
			ret = sl_host_snat_alloc6(&pick);
		if (ret == SL_HOST6_SNAT)
			ret = sl_host_snat_flow6(skb, &pick);
	} else if (ret == SL_HOST6_ICMP) {
		ret = sl_host_icmp_in6(skb);
	}
	if (ret == SL_HOST6_SEND)
		return sl_host_send6(skb);
	return ret;
}

/*
 * An ICMPv6 error a local backend (or this node, for it) sends about an external DNAT-only or
 * tunnelled flow, quoting client:cport -> backend:bport: the REVERSE entry (mirror of the quote)
 * gives the frontend the client knows; the quote becomes client:cport -> frontend:fport (and the
 * outer source, when the pod itself reports, the frontend), as IPv4's sl_host_icmp_out. A Tunnel
 * flow's is wrapped back instead (SL_HOST6_WRAP).
 */
static __noinline int sl_host_icmp_out6(struct __sk_buff *skb)
{
	struct sl_icmp6_err e = {}; /* zeroed: clang copies unset fields, refused */
	struct sl_ct_value6 *ct = sl_icmp6_err_flow(skb, &e);
	__be32 frontend_addr[4];
	__be16 frontend_port;

	if (!ct || ct->type != SL_CT_REVERSE || !(ct->flags & SL_CT_F_EXTERNAL) ||
	    (ct->flags & (SL_CT_F_SNAT | SL_CT_F_HAIRPIN)))
		return SL_TC_PASS;
	sl_addr6_copy(frontend_addr, ct->nat_addr);
	frontend_port = ct->nat_port;
	if (ct->flags & SL_CT_F_DECAP) {
		/*
		 * A tunnelled flow: a Tunnel flow's error is wrapped back to the ingress node
		 * untouched, like the replies (sl_host_tunnel_icmp6): only that node knows the
		 * frontend, and translates it (sl_host_icmp_unwrapped6). DSR's go to the client
		 * straight, quoting its frontend (nat_saddr:nat_sport), as IPv4's.
		 */
		if (!(ct->flags & SL_CT_F_DSR))
			return SL_HOST6_WRAP;
		sl_addr6_copy(frontend_addr, ct->nat_saddr);
		frontend_port = ct->nat_sport;
	}
	if (sl_host_icmp_nat6(skb, &e, true, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

/* A local backend's reply to an external flow (REVERSE, DNAT only): from the frontend again. */
static __noinline int sl_host_reply6(struct __sk_buff *skb)
{
	struct sl_ct_value6 *ct;
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;
	__be32 frontend_addr[4];
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
	if (!ct || ct->type != SL_CT_REVERSE || !(ct->flags & SL_CT_F_EXTERNAL) ||
	    (ct->flags & SL_CT_F_SNAT))
		return SL_TC_PASS;
	if (ct->flags & SL_CT_F_DECAP)
		return SL_HOST6_WRAP; /* a tunnelled flow's reply: wrapped back, or DSR */
	sl_addr6_copy(frontend_addr, ct->nat_addr);
	frontend_port = ct->nat_port;
	sl_ct_update6(&key, ct, pkt.tcp_flags, now);
	if (sl_nat_src6(skb, &pkt, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

/*
 * What leaves through a host interface in IPv6 (host.bpf.c's sl_host6_egr): a local backend's
 * reply, or an ICMPv6 error about its flow (two calls side by side, as on ingress).
 */
static __always_inline int sl_host_egress6(struct __sk_buff *skb)
{
	int ret = sl_host_reply6(skb);

	if (ret == SL_HOST6_ICMP)
		return sl_host_icmp_out6(skb);
	return ret;
}

#endif /* SL_LIB_HOST6_H */
