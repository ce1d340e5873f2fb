/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * External traffic: both programs attach to the clsact hooks of the node's host-facing
 * interfaces (eth0, ens5, ...), in the node's network namespace. They translate what reaches the
 * node from outside for a NodePort (on the node's addresses), an ExternalIP or a LoadBalancer
 * ingress IP: frontends flagged SL_SVC_F_EXTERNAL. ClusterIPs are left to the pod interfaces and
 * connect-time programs. Flows live in the same conntrack map as pod traffic (sl_ct4), their
 * entries flagged SL_CT_F_EXTERNAL so each program handles only its own.
 *
 *  sl_host_ingress (what arrives from the network)
 *    - a new flow to an external frontend: source ranges checked (drop), a backend selected
 *      (externalTrafficPolicy: the Local set for eTP=Local; none there -> drop, none at all ->
 *      TCP RST / ICMP port unreachable back out, as kube-proxy);
 *      a backend on this node: DNAT only, the pod sees the client's address and port, the
 *      kernel routes it to the pod; on another node: DNAT and SNAT to this node's address and a
 *      reserved port (snat.h), then sent straight out (fib.h: its source is now ours);
 *    - later packets of such a flow (FORWARD entry): the same rewrite;
 *    - the reply of an SNATed flow (REVERSE entry flagged SNAT): back to frontend -> client and
 *      sent out;
 *    - ICMP errors about external flows: translated to what the backend (or its node) sent;
 *    - anything else: untouched (pod traffic's entries are the pod programs').
 *
 * Verdicts (verdict.h): a packet translated for the kernel to route on (to a local pod, a local
 * pod's reply) passes with TC_ACT_UNSPEC like tc.bpf.c's, so filters behind Sluice's on the same
 * hook (a node firewall) still see it; Sluice ends the chain only for its own verdicts: drops,
 * rejects, and packets it sends out itself (redirect).
 *  sl_host_egress (what leaves towards the network)
 *    - a local backend's reply to an external client (REVERSE entry, DNAT only): source back to
 *      the frontend; ICMP errors the pod sends about the flow quote the frontend.
 *
 * Tunnel and DSR modes (tunnel.h): a new flow to a backend on another node is wrapped for that
 * node instead of SNATed; the node unwraps it and hands it to the kernel for the pod. Tunnel:
 * the pod's replies are wrapped back to the ingress node (sl_host_egress), which restores the
 * frontend. DSR: the tunnel header carries the frontend, and the backend's node rewrites the
 * replies' source to it and lets them go straight to the client; clients in sl_dsr_optout4 get
 * Tunnel. ICMP errors about tunnelled flows take the flow's way: a network's error about a reply
 * is wrapped for the backend's node, a backend's error about a request wrapped back (Tunnel) and
 * translated by the ingress node, or sent straight to the client (DSR). A pod's reply too large
 * to wrap back is answered with ICMP fragmentation needed to the pod.
 *
 * IPv6 (lib/host6.h, chosen by skb->protocol): the entry programs tail-call sl_host6_ingr /
 * sl_host6_egr (below: verified apart from the IPv4 path). NodePort, ExternalIP and
 * LoadBalancer frontends in sl_frontends6: a local backend DNATed, a remote one SNATed to this
 * node's IPv6 address (snat6.h) or, Tunnel and DSR, sent through the IPv6 tunnel
 * (lib/host6_tunnel.h: sl_host6_tun, sl_host6_decap; SNAT when the backend's node has no IPv6
 * address); Maglev, source ranges and ICMPv6 errors about external flows, tunnelled ones
 * included, as IPv4's.
 *
 * Not handled yet (see docs/external-traffic.md): SCTP, fragments.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "lb.h"
#include "parse.h"
#include "nat.h"
#include "conntrack.h"
#include "reject.h"
#include "icmp.h"
#include "icmp_flow.h"
#include "verdict.h"
#include "src_ranges.h"
#include "snat.h"
#include "fib.h"
#include "maglev.h"
#include "tunnel.h"
#include "mss.h"
#include "ext_counters.h"
#include "host6.h"
#include "host6_tunnel.h"

/*
 * Wraps the packet (its IPv4 header at l3_off) and sends it to node peer through the tunnel,
 * with outer UDP source port udp_sport (the flow's hash: ECMP keeps a flow's packets, and the
 * errors about it, on one path); route_inner: this node forwards the inner packet as a router
 * would (TTL decremented), which the kernel did already for a packet leaving through the host
 * interface. frontend_addr set: a DSR flow's client packet, wrapped with that frontend. The
 * caller has checked that it fits once wrapped (sl_tunnel_too_big).
 */
static __always_inline int sl_host_tunnel_send(struct __sk_buff *skb, __u32 l3_off,
					       __be16 udp_sport, __be32 peer, bool route_inner,
					       __be32 frontend_addr, __be16 frontend_port)
{
	const struct sl_node_config4 *cfg = sl_node_config4();
	__be32 self;

	if (!cfg || !cfg->snat_addr) {
		sl_count_drop(SL_DROP_NO_ROUTE);
		return TC_ACT_SHOT;
	}
	self = cfg->snat_addr;
	if (route_inner && sl_ttl_dec4(skb, l3_off) < 0) {
		sl_count_drop(SL_DROP_TTL);
		return TC_ACT_SHOT;
	}
	if (sl_tunnel_encap4(skb, self, peer, udp_sport, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	return sl_fib_send4(skb, self, peer);
}

/*
 * Wraps a translated packet (pkt, of the flow whose tuple key is) for node peer (see
 * sl_host_tunnel_send). dsr: a DSR flow's client packet, wrapped with the frontend it was sent
 * to (key's destination). A SYN's MSS is clamped to what fits once wrapped (mss.h) — except a
 * DSR client's: its MSS bounds the backend's segments, which go to the client directly,
 * unwrapped (the backend's SYN-ACK, whose MSS bounds what the client sends through the tunnel,
 * is clamped at its node).
 */
static __always_inline int sl_host_tunnel_out(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					      const struct sl_ct_key4 *key, __be32 peer,
					      bool route_inner, bool dsr)
{
	if (!dsr && sl_tcp_clamp_mss4(skb, pkt, sl_tunnel_mss(SL_TUNNEL_OVERHEAD)) < 0)
		return sl_rewrite_failed();
	return sl_host_tunnel_send(skb, pkt->l3_off,
				   sl_tunnel_sport(key->saddr, key->daddr, key->sport, key->dport),
				   peer, route_inner, dsr ? key->daddr : 0, dsr ? key->dport : 0);
}

/*
 * An ICMP error about a tunnelled flow (e, parsed before any rewrite: its quote's mirror is the
 * flow entry's key), wrapped for node peer like the flow's own packets (the same outer source
 * port). Never with the DSR header: the far end hands an unwrapped error to its kernel whatever
 * the wrapping, and the header would re-create nothing (an error is no flow packet). Errors are
 * small (at most 576 bytes from Linux, RFC 1812), but --tunnel-mtu may be set down to 576.
 */
static __always_inline int sl_host_icmp_tunnel(struct __sk_buff *skb, const struct sl_icmp_err4 *e,
					       __be32 peer, bool route_inner)
{
	if (sl_tunnel_too_big(skb, SL_TUNNEL_OVERHEAD)) {
		sl_count_drop(SL_DROP_TUNNEL_MTU);
		return TC_ACT_SHOT;
	}
	return sl_host_tunnel_send(
		skb, e->l3_off, sl_tunnel_sport(e->in_daddr, e->in_saddr, e->in_dport, e->in_sport),
		peer, route_inner, 0, 0);
}

/*
 * Rewrites a client's packet to backend_addr:backend_port and then: for SNAT (snat_addr set),
 * its source to snat_addr:snat_port and sends it straight out (fib.h); for Tunnel and DSR (peer
 * set), wraps it for the backend's node; DNAT only, hands it to the kernel, which routes it to
 * the local pod.
 */
static __always_inline int sl_host_to_backend(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					      const struct sl_ct_key4 *key, __be32 backend_addr,
					      __be16 backend_port, __be32 snat_addr,
					      __be16 snat_port, __be32 peer, bool dsr)
{
	__u32 overhead = dsr ? SL_TUNNEL_DSR_OVERHEAD : SL_TUNNEL_OVERHEAD;

	/*
	 * Too large once wrapped: the client hears it (ICMP fragmentation needed with what fits,
	 * from the frontend it sent to, so its path MTU discovery adapts), before any rewrite.
	 */
	if (peer && sl_tunnel_too_big(skb, overhead)) {
		sl_count_drop(SL_DROP_TUNNEL_MTU);
		return sl_reject_too_big4(skb, pkt, sl_tunnel_mtu - overhead, 0);
	}
	if (sl_nat_dst4(skb, pkt, backend_addr, backend_port) < 0)
		return sl_rewrite_failed();
	if (peer)
		return sl_host_tunnel_out(skb, pkt, key, peer, true, dsr);
	if (!snat_addr)
		return SL_TC_PASS; /* the kernel routes it to the pod */
	if (sl_nat_src4(skb, pkt, snat_addr, snat_port) < 0)
		return sl_rewrite_failed();
	return sl_fib_redirect4(skb, pkt->l3_off, snat_addr, backend_addr);
}

/* A packet of a tracked external flow from its client. */
static __always_inline int sl_host_forward(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					   const struct sl_ct_key4 *key, struct sl_ct_value4 *ct,
					   __u64 now)
{
	__be32 backend_addr = ct->nat_addr, snat_addr = 0, peer = 0;
	__be16 backend_port = ct->nat_port, snat_port = 0;

	if (ct->flags & SL_CT_F_SNAT) {
		snat_addr = ct->nat_saddr;
		snat_port = ct->nat_sport;
	}
	if (ct->flags & SL_CT_F_TUNNEL)
		peer = ct->nat_saddr;
	sl_ct_update4(key, ct, pkt->tcp_flags, now);
	/*
	 * DSR: this node never sees the backend's SYN-ACK, so the client's first ACK without SYN
	 * says the handshake is done (else the entry would keep the short SYN-sent timeout).
	 */
	if ((ct->flags & SL_CT_F_DSR) && ct->state < SL_CT_STATE_ESTABLISHED &&
	    pkt->proto == IPPROTO_TCP &&
	    (pkt->tcp_flags & (SL_TCP_FLAG_SYN | SL_TCP_FLAG_ACK | SL_TCP_FLAG_RST)) ==
		    SL_TCP_FLAG_ACK)
		ct->state = SL_CT_STATE_ESTABLISHED;
	sl_count_service(ct->svc_id, skb->len, false, false);
	return sl_host_to_backend(skb, pkt, key, backend_addr, backend_port, snat_addr, snat_port,
				  peer, ct->flags & SL_CT_F_DSR);
}

/* A remote backend's reply to an SNATed flow: backend -> node:sport becomes frontend -> client. */
static __always_inline int sl_host_snat_reply(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					      const struct sl_ct_key4 *key, struct sl_ct_value4 *ct,
					      __u64 now)
{
	__be32 frontend_addr = ct->nat_addr, client_addr = ct->nat_saddr;
	__be16 frontend_port = ct->nat_port, client_port = ct->nat_sport;

	sl_ct_update4(key, ct, pkt->tcp_flags, now);
	if (sl_nat_src4(skb, pkt, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	if (sl_nat_dst4(skb, pkt, client_addr, client_port) < 0)
		return sl_rewrite_failed();
	return sl_fib_redirect4(skb, pkt->l3_off, frontend_addr, client_addr);
}

/* No usable backend: reject when the service has none, drop for eTP=Local (kube-proxy). */
static __always_inline int sl_host_refuse(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					  const struct sl_service_value *svc, int reason)
{
	sl_count_drop(reason);
	sl_count_service(svc->svc_id, 0, false, true);
	sl_count_kind(svc->flags, 0, false, true);
	if (reason == SL_DROP_NO_BACKEND)
		return sl_reject4(skb, pkt);
	return TC_ACT_SHOT;
}

/*
 * The node a new flow to remote backend be is tunnelled to (Tunnel, DSR), or 0: SNAT (SNAT mode,
 * the backend's node unknown, or no address of our own to send from).
 */
static __always_inline __be32 sl_host_tunnel_peer(const struct sl_backend_value4 *be)
{
	const struct sl_node_config4 *cfg;

	if (!sl_tunnel_enabled() || !be->node_addr)
		return 0;
	cfg = sl_node_config4();
	if (!cfg || !cfg->snat_addr || cfg->snat_addr == be->node_addr)
		return 0;
	return be->node_addr;
}

/* The first packet of an external flow to a frontend. */
static __always_inline int sl_host_new_flow(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					    const struct sl_ct_key4 *key,
					    const struct sl_service_value *svc)
{
	struct sl_backend_value4 be;
	__be32 snat_addr = 0, peer = 0;
	__be16 snat_port = 0;
	bool dsr = false;
	__u64 now;
	int ret;

	if (!sl_src_range_allows4(svc, pkt->saddr)) {
		sl_count_drop(SL_DROP_SRC_RANGE);
		sl_count_kind(svc->flags, 0, false, true);
		return TC_ACT_SHOT;
	}
	ret = sl_maglev_select_backend4(svc, pkt->saddr, pkt->sport, pkt->proto, &be);
	if (ret < 0)
		return sl_host_refuse(skb, pkt, svc, -ret);
	now = bpf_ktime_get_ns();
	if (be.flags & SL_BE_F_LOCAL)
		ret = sl_ct_create_external4(key, &be, svc->svc_id, 0, 0, pkt->tcp_flags, now);
	else if ((peer = sl_host_tunnel_peer(&be))) {
		dsr = sl_dsr_for_client4(pkt->saddr);
		ret = sl_ct_create_tunnel4(key, &be, svc->svc_id, peer, dsr, pkt->tcp_flags, now);
	} else
		ret = sl_snat_create4(key, &be, svc->svc_id, pkt->tcp_flags, now, &snat_addr,
				      &snat_port);
	if (ret < 0) {
		sl_count_drop(-ret);
		return TC_ACT_SHOT;
	}
	sl_count_service(svc->svc_id, skb->len, true, false);
	sl_count_kind(svc->flags, skb->len, true, false);
	return sl_host_to_backend(skb, pkt, key, be.addr, be.port, snat_addr, snat_port, peer, dsr);
}

/*
 * An ICMP error arriving at this node about an external flow (icmp.h):
 *  - quoting frontend:fport -> client:cport (a reply this node sent, e.g. fragmentation needed
 *    from a router on the client's path): its FORWARD entry (the mirror key) gives the backend,
 *    the quote's source becomes backend:bport and, for SNAT, its destination this node's
 *    node:sport, so the error reaches the backend's stack. A Tunnel or DSR flow's error is
 *    wrapped for the backend's node (nat_saddr) like the flow's packets; that node unwraps it and
 *    its kernel routes it to the pod, which matches it to its socket by the quote, now pod ->
 *    client as the pod sent it (the outer destination, the frontend, became the pod too);
 *  - quoting node:sport -> backend:bport (an SNATed request, reported by the backend's side): its
 *    REVERSE entry gives the frontend and the client; the error goes to the client quoting
 *    client:cport -> frontend:fport;
 *  - arrived through the tunnel (in->peer) quoting client:cport -> backend:bport: the backend's
 *    node sent back an error about a Tunnel flow's request (the pod's port unreachable, or its
 *    node's own), untranslated (sl_host_icmp_out); the REVERSE entry, whose node must be the
 *    sender, gives the frontend, and the error goes to the client quoting client:cport ->
 *    frontend:fport, from the frontend when the pod sent it.
 * DNAT-only errors are routed to the pod by the kernel; the others are sent out directly. The
 * backend's node passes what it unwraps untouched (DECAP entries): its kernel routes it to the
 * pod.
 */
static __always_inline int sl_host_icmp_in(struct __sk_buff *skb, const struct sl_tunnel_in *in)
{
	struct sl_icmp_err4 e;
	struct sl_ct_value4 *ct = sl_icmp_err_flow4(skb, &e);
	__be32 to_addr;
	__be16 a_port, b_port;
	__be32 a_addr, b_addr;
	bool fwd, tunnel;

	if (!ct || !(ct->flags & SL_CT_F_EXTERNAL) || (ct->flags & SL_CT_F_DECAP))
		return SL_TC_PASS;
	fwd = ct->type == SL_CT_FORWARD;
	tunnel = ct->flags & SL_CT_F_TUNNEL;
	if (in->peer) {
		/* Only the error a Tunnel flow's own backend node sends back. */
		if (fwd || !tunnel || ct->nat_saddr != in->peer)
			return SL_TC_PASS;
	} else if (!fwd && !(ct->flags & SL_CT_F_SNAT)) {
		/* A local backend's flow: errors come from the pod side. A tunnelled flow's come
		 * through the tunnel (above) or, DSR, from the backend's node straight. */
		return SL_TC_PASS;
	}
	a_addr = ct->nat_addr;
	a_port = ct->nat_port;
	b_addr = ct->nat_saddr;
	b_port = ct->nat_sport;
	/* FORWARD: the quoted source becomes the backend; REVERSE: the destination the frontend. */
	if (sl_icmp_err_nat4(skb, &e, !fwd, a_addr, a_port) < 0)
		return sl_rewrite_failed();
	if (tunnel) {
		if (fwd)
			return sl_host_icmp_tunnel(skb, &e, b_addr, true);
		return sl_fib_redirect4(skb, e.l3_off, a_addr, e.daddr);
	}
	if (!(ct->flags & SL_CT_F_SNAT))
		return SL_TC_PASS;
	/* FORWARD: the quoted destination becomes node:sport; REVERSE: the source the client. */
	if (sl_icmp_err_nat4(skb, &e, fwd, b_addr, b_port) < 0)
		return sl_rewrite_failed();
	to_addr = fwd ? a_addr : b_addr;
	return sl_fib_redirect4(skb, e.l3_off, fwd ? e.saddr : a_addr, to_addr);
}

/*
 * An ICMP error a local backend (or this node, for it) sends about an external flow, quoting
 * client:cport -> backend:bport: the REVERSE entry (mirror key) gives the frontend the client
 * knows (a DSR flow's: nat_saddr:nat_sport, the error then goes to the client directly like the
 * replies). A Tunnel flow's (DECAP without DSR) is wrapped back to the ingress node untouched,
 * like the replies: only that node knows the frontend, and translates it (sl_host_icmp_in).
 */
static __always_inline int sl_host_icmp_out(struct __sk_buff *skb)
{
	struct sl_icmp_err4 e;
	struct sl_ct_value4 *ct = sl_icmp_err_flow4(skb, &e);
	__be32 frontend_addr;
	__be16 frontend_port;

	if (!ct || ct->type != SL_CT_REVERSE || !(ct->flags & SL_CT_F_EXTERNAL) ||
	    (ct->flags & (SL_CT_F_SNAT | SL_CT_F_HAIRPIN)))
		return SL_TC_PASS;
	frontend_addr = ct->nat_addr;
	frontend_port = ct->nat_port;
	if (ct->flags & SL_CT_F_DECAP) {
		if (!(ct->flags & SL_CT_F_DSR))
			return sl_host_icmp_tunnel(skb, &e, ct->nat_saddr, false);
		frontend_addr = ct->nat_saddr;
		frontend_port = ct->nat_sport;
	}
	if (sl_icmp_err_nat4(skb, &e, true, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

/*
 * Whether this node's live FORWARD entry ct of a tunnelled flow still says what a packet that
 * arrived as in says: the same ingress node, the same mode and, for DSR, the same frontend (kept
 * by the REVERSE entry, the twin).
 */
static __always_inline bool sl_host_decap_current(const struct sl_ct_key4 *key,
						  const struct sl_ct_value4 *ct,
						  const struct sl_tunnel_in *in)
{
	struct sl_ct_value4 *rev;

	if (ct->type != SL_CT_FORWARD || !(ct->flags & SL_CT_F_DECAP) || ct->nat_saddr != in->peer)
		return false;
	if (!(ct->flags & SL_CT_F_DSR))
		return !in->frontend_addr;
	if (!in->frontend_addr)
		return false;
	rev = sl_ct_twin4(key, ct);
	return rev && rev->nat_saddr == in->frontend_addr && rev->nat_sport == in->frontend_port;
}

/*
 * A packet that arrived through the tunnel from node in->peer, decapsulated:
 *  - the reply of a flow this node tunnelled to a backend (REVERSE, TUNNEL): back to frontend ->
 *    client and sent out;
 *  - otherwise a client's packet this node is the backend's node for: its entries (DECAP)
 *    remember the peer, where the replies go back (Tunnel), or the frontend they leave from
 *    (DSR, in->frontend_addr set); the kernel routes it to the pod, which sees the client's
 *    address.
 */
static __always_inline int sl_host_from_tunnel(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					       const struct sl_ct_key4 *key,
					       struct sl_ct_value4 *ct, __u64 now,
					       const struct sl_tunnel_in *in)
{
	__be32 frontend_addr, client_addr = key->daddr;

	if (ct && ct->type == SL_CT_REVERSE && (ct->flags & SL_CT_F_TUNNEL) && !in->frontend_addr) {
		frontend_addr = ct->nat_addr;
		if (sl_nat_reply4(skb, pkt, key, ct, now) < 0)
			return sl_rewrite_failed();
		return sl_fib_redirect4(skb, pkt->l3_off, frontend_addr, client_addr);
	}
	if (ct && sl_host_decap_current(key, ct, in)) {
		sl_ct_update4(key, ct, pkt->tcp_flags, now);
		return SL_TC_PASS;
	}
	/* New here, or now from another ingress node or frontend: (re)created as it arrived. */
	if (sl_ct_create_decap4(key, in->peer, in->frontend_addr, in->frontend_port, pkt->tcp_flags,
				now ? now : bpf_ktime_get_ns()) < 0) {
		sl_count_drop(SL_DROP_CT_FULL);
		return TC_ACT_SHOT;
	}
	return SL_TC_PASS;
}

/*
 * A local backend's reply to a flow that came tunnelled from node ct->nat_saddr: wrapped back.
 * One that would not fit once wrapped (a UDP datagram; TCP segments are bounded by the MSS the
 * SYNs were clamped to, unless the flow predates the clamp) is not sent. With DF set the pod
 * hears why, as from a router on its path: ICMP fragmentation needed with the MTU that fits,
 * quoting its packet (pod -> client, as it left the pod but for the TTL the kernel decremented)
 * and sent from the client's address into this interface's ingress, where the kernel routes it
 * to the pod. The pod's kernel matches the error to its socket by the quote alone; the source
 * is the client's because the node's input path drops a packet from one of the node's own
 * addresses as a martian, while the client is reachable through this very interface (reverse
 * path filtering passes). sl_host_icmp_in then leaves it alone (a DECAP flow's error).
 */
static __always_inline int sl_host_tunnel_back(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					       const struct sl_ct_key4 *key,
					       struct sl_ct_value4 *ct, __u64 now)
{
	__be32 peer = ct->nat_saddr;

	sl_ct_update4(key, ct, pkt->tcp_flags, now);
	if (sl_tunnel_too_big(skb, SL_TUNNEL_OVERHEAD)) {
		sl_count_drop(SL_DROP_TUNNEL_MTU);
		return sl_reject_too_big4(skb, pkt, sl_tunnel_mtu - SL_TUNNEL_OVERHEAD,
					  BPF_F_INGRESS);
	}
	return sl_host_tunnel_out(skb, pkt, key, peer, false, false);
}

/*
 * DSR, the backend's node: a local backend's reply to a flow that came tunnelled with its
 * frontend (ct->nat_saddr:nat_sport) leaves with that frontend as its source, straight to the
 * client: the kernel already routed it here, towards the client. Its SYN-ACK's MSS is clamped:
 * it bounds what the client sends, which reaches here through the tunnel.
 */
static __always_inline int sl_host_dsr_reply(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					     const struct sl_ct_key4 *key, struct sl_ct_value4 *ct,
					     __u64 now)
{
	__be32 frontend_addr = ct->nat_saddr;
	__be16 frontend_port = ct->nat_sport;

	sl_ct_update4(key, ct, pkt->tcp_flags, now);
	if (sl_tcp_clamp_mss4(skb, pkt, sl_tunnel_mss(SL_TUNNEL_DSR_OVERHEAD)) < 0)
		return sl_rewrite_failed();
	if (sl_nat_src4(skb, pkt, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

/*
 * The IPv6 path (lib/host6.h) is a pair of programs of its own, reached from the entry programs
 * by tail call: the verifier walks each program on its own, so the IPv4 path and the IPv6 one
 * (its SNAT allocator above all) do not share one program's budget, and each gets its own
 * 512-byte stack. sl_host6_progs is filled by libbpf at load, and pinned: the kernel empties a
 * program array when its last user-space reference goes, so unpinned it went empty when the
 * agent died, and IPv6 external traffic passed untranslated until the next agent attached (a
 * reload over the pin fills the slots with the new object's programs). A program mixing tail calls
 * and BPF-to-BPF calls is held to 256 bytes of stack per frame (5.10), so the entry programs make
 * no call (the IPv4 path is inlined, it fits alone) and the IPv6 programs no tail call. Names stay
 * under the kernel's 15 characters.
 */
int sl_host6_ingr(struct __sk_buff *skb);
int sl_host6_egr(struct __sk_buff *skb);
int sl_host6_tun(struct __sk_buff *skb);
int sl_host6_decap(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SL_HOST6_PROGS);
	/*
	 * key_size, not __type(key): a BTF key without a BTF value makes the kernel refuse the
	 * map's BTF (libbpf then retries without it, with a warning in the agent's log).
	 */
	__uint(key_size, sizeof(__u32));
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, int(struct __sk_buff *));
} sl_host6_progs SEC(".maps") = {
	.values =
		{
			[SL_HOST6_INGRESS] = (void *)&sl_host6_ingr,
			[SL_HOST6_EGRESS] = (void *)&sl_host6_egr,
			[SL_HOST6_TUNNEL] = (void *)&sl_host6_tun,
			[SL_HOST6_DECAP] = (void *)&sl_host6_decap,
		},
};

/*
 * A tunnelled flow's packet (SL_HOST6_WRAP) goes on to sl_host6_tun: a tail call from the
 * program's own frame (the calls below it are over by then, and none of them makes one), so the
 * 5.10 rule on tail calls below calls with large frames does not apply. Should the slot be
 * empty, the packet passes untouched.
 */
static __always_inline int sl_host6_wrap(struct __sk_buff *skb, int ret)
{
	if (ret != SL_HOST6_WRAP)
		return ret;
	bpf_tail_call(skb, &sl_host6_progs, SL_HOST6_TUNNEL);
	return SL_TC_PASS;
}

SEC("tc")
int sl_host6_ingr(struct __sk_buff *skb)
{
	return sl_host6_wrap(skb, sl_host_ingress6(skb));
}

SEC("tc")
int sl_host6_egr(struct __sk_buff *skb)
{
	return sl_host6_wrap(skb, sl_host_egress6(skb));
}

/* The IPv6 tunnel (lib/host6_tunnel.h): wrapping, and unwrapping, each a program of its own. */
SEC("tc")
int sl_host6_tun(struct __sk_buff *skb)
{
	return sl_host_tunnel6(skb);
}

SEC("tc")
int sl_host6_decap(struct __sk_buff *skb)
{
	return sl_host_decap6(skb);
}

/*
 * An IPv6 frame goes to its family's program; should the slot be empty (it never is once
 * loaded: pinned, see above), the frame passes untouched.
 */
static __always_inline int sl_host_to_ipv6(struct __sk_buff *skb, __u32 slot)
{
	bpf_tail_call(skb, &sl_host6_progs, slot);
	return SL_TC_PASS;
}

static __always_inline int sl_host_ingress4(struct __sk_buff *skb)
{
	struct sl_service_value *svc;
	struct sl_tunnel_in in = {};
	struct sl_ct_value4 *ct;
	struct sl_ct_key4 key;
	struct sl_pkt4 pkt;
	__u64 now = 0;
	int ret;

	if (sl_tunnel_decap4(skb, &in) == SL_TUNNEL_DROP)
		return TC_ACT_SHOT;
	ret = sl_ct_parse_lookup4(skb, &pkt, &key, &ct, &now);
	if (ret == SL_PARSE_SKIP)
		return sl_host_icmp_in(skb, &in);
	if (ret != SL_PARSE_OK)
		return SL_TC_PASS;
	if (in.peer)
		return sl_host_from_tunnel(skb, &pkt, &key, ct, now, &in);
	if (ct && (ct->flags & SL_CT_F_DECAP))
		return SL_TC_PASS; /* a tunnelled flow's packet not through the tunnel: not ours */
	if (ct && (ct->flags & SL_CT_F_EXTERNAL)) {
		if (ct->type == SL_CT_FORWARD)
			return sl_host_forward(skb, &pkt, &key, ct, now);
		if (ct->flags & SL_CT_F_SNAT)
			return sl_host_snat_reply(skb, &pkt, &key, ct, now);
		return SL_TC_PASS;
	}
	if (ct)
		return SL_TC_PASS; /* a pod flow's reply from another node: the pod programs' */
	svc = sl_lookup_frontend4(pkt.daddr, pkt.dport, pkt.proto);
	if (!svc || !(svc->flags & SL_SVC_F_EXTERNAL))
		return SL_TC_PASS;
	return sl_host_new_flow(skb, &pkt, &key, svc);
}

static __always_inline int sl_host_egress4(struct __sk_buff *skb)
{
	struct sl_ct_value4 *ct;
	struct sl_ct_key4 key;
	struct sl_pkt4 pkt;
	__u64 now = 0;
	int ret;

	ret = sl_ct_parse_lookup4(skb, &pkt, &key, &ct, &now);
	if (ret == SL_PARSE_SKIP)
		return sl_host_icmp_out(skb);
	if (ret != SL_PARSE_OK)
		return SL_TC_PASS;
	if (!ct || ct->type != SL_CT_REVERSE || !(ct->flags & SL_CT_F_EXTERNAL) ||
	    (ct->flags & SL_CT_F_SNAT))
		return SL_TC_PASS;
	if ((ct->flags & (SL_CT_F_DECAP | SL_CT_F_DSR)) == (SL_CT_F_DECAP | SL_CT_F_DSR))
		return sl_host_dsr_reply(skb, &pkt, &key, ct, now);
	if (ct->flags & SL_CT_F_DECAP)
		return sl_host_tunnel_back(skb, &pkt, &key, ct, now);
	if (sl_nat_reply4(skb, &pkt, &key, ct, now) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

SEC("tc")
int sl_host_ingress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return sl_host_to_ipv6(skb, sl_tunnel_is_outer6(skb) ? SL_HOST6_DECAP
								     : SL_HOST6_INGRESS);
	return sl_host_ingress4(skb);
}

SEC("tc")
int sl_host_egress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return sl_host_to_ipv6(skb, SL_HOST6_EGRESS);
	return sl_host_egress4(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
