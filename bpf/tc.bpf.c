/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TC service NAT for workload interfaces: both programs attach to the clsact hooks of the HOST
 * side of a pod's veth, in the node's network namespace.
 *
 *  sl_tc_from_pod (ingress: what the pod sends)
 *    - a tracked flow (FORWARD entry): DNAT to its backend, even if the backend has since left
 *      the service (finishing connections keep their endpoint);
 *    - a hairpin reply (REVERSE entry flagged hairpin): the pod answering itself through the
 *      service, rewritten to frontend -> pod; hairpinned packets are sent straight back out of
 *      the pod's interface (sl_tc_hairpin_out);
 *    - otherwise, to a frontend: select a backend, create the flow's entries, DNAT; no usable
 *      backend: TCP RST / ICMP port unreachable back to the pod, or a counted drop for a Local
 *      policy without local backends (as kube-proxy);
 *    - a new connection to a ClusterIP on a port that is no frontend (sl_vips4): rejected;
 *    - a TCP segment to a frontend that is no SYN and no tracked flow's: passes untouched
 *      (a connection kube-proxy translated, see docs/coexistence.md);
 *    - anything else passes untouched (a SYN to a non-frontend first drops a finished service
 *      flow whose backend tuple it reuses, see sl_ct_forget_finished4);
 *    - a SYN reusing the tuple of a finished flow first drops that flow's entries, whoever
 *      translates the new connection (sl_tc_forget_reused4).
 *  sl_tc_to_pod (egress: what is delivered to the pod)
 *    - a reply of a tracked flow (REVERSE entry): source backend -> frontend.
 *
 * Only TCP and UDP are translated, and the ICMP errors about them (icmp.h): towards the pod, an
 * error quoting client -> backend is rewritten to quote client -> frontend; from the pod, one
 * quoting frontend -> client (about a reply) to quote backend -> client and go to the backend.
 * SCTP frontends (CRC32c checksum) and fragments (see parse.h) pass untouched for now;
 * connect-time load balancing covers those sockets.
 *
 * IPv6 (sl_tc_from_pod6, sl_tc_to_pod6; docs/ipv6.md): the same branches with conntrack in
 * sl_ct6 — DNAT and its reverse, hairpin, rejects as TCP RST / ICMPv6 port unreachable
 * (reject6.h), Local-without-local-endpoints a counted drop, and the ICMPv6 errors about
 * translated flows (destination unreachable, packet too big, time exceeded: icmp6.h). Every
 * other ICMPv6 message, neighbour discovery included, is never touched. TCP and UDP behind
 * hop-by-hop, destination options, routing (segments left 0) and AH headers are translated like
 * any other (lib/parse6.h walks them); fragments, routing headers with segments left, ESP and
 * longer chains pass untouched and are counted. A reused tuple's finished flow is forgotten as in
 * IPv4 (sl_tc_forget_reused6, sl_ct_forget_finished6).
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
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
#include "lb6.h"
#include "parse6.h"
#include "nat6.h"
#include "conntrack6.h"
#include "reject6.h"
#include "icmp6.h"
#include "handoff.h"

/*
 * A hairpinned packet (the pod reaching itself through its service) goes straight back out of the
 * pod's interface, Ethernet addresses swapped: its source is now the frontend, which for a
 * NodePort, ExternalIP or LoadBalancer IP is one of the node's own addresses, and the kernel's
 * input path would drop it as a martian.
 */
static __always_inline int sl_tc_hairpin_out(struct __sk_buff *skb)
{
	struct ethhdr eth;
	__u8 mac[ETH_ALEN];

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return TC_ACT_SHOT;
	__builtin_memcpy(mac, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, mac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* A packet of a tracked flow in the client's direction: to the flow's backend. */
static __always_inline int sl_tc_forward(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					 const struct sl_ct_key4 *key, struct sl_ct_value4 *ct,
					 __u64 now)
{
	__be32 backend_addr = ct->nat_addr;
	__be16 backend_port = ct->nat_port;
	__be32 hairpin_saddr = ct->flags & SL_CT_F_HAIRPIN ? ct->nat_saddr : 0;
	__u32 svc_id = ct->svc_id;

	sl_ct_update4(key, ct, pkt->tcp_flags, now);
	sl_count_service(svc_id, skb->len, false, false);
	if (sl_nat_dst4(skb, pkt, backend_addr, backend_port) < 0)
		return sl_rewrite_failed();
	if (!hairpin_saddr)
		return SL_TC_PASS;
	if (sl_nat_src4(skb, pkt, hairpin_saddr, pkt->sport) < 0)
		return sl_rewrite_failed();
	return sl_tc_hairpin_out(skb);
}

/*
 * The pod answering its own hairpinned flow: backend(pod):bport -> frontend:cport becomes
 * frontend:fport -> pod:cport (the pod is both ends, so its address is the key's source).
 */
static __always_inline int sl_tc_hairpin_reply(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					       const struct sl_ct_key4 *key,
					       struct sl_ct_value4 *ct, __u64 now)
{
	__be32 frontend_addr = ct->nat_addr;
	__be16 frontend_port = ct->nat_port;

	sl_ct_update4(key, ct, pkt->tcp_flags, now);
	if (sl_nat_src4(skb, pkt, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	if (sl_nat_dst4(skb, pkt, key->saddr, pkt->dport) < 0)
		return sl_rewrite_failed();
	return sl_tc_hairpin_out(skb);
}

/* No usable backend: reject (RST / ICMP) when the service has none, drop for a Local policy. */
static __always_inline int sl_tc_refuse(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					__u32 svc_id, int reason)
{
	sl_count_drop(reason);
	sl_count_service(svc_id, 0, false, true);
	if (reason == SL_DROP_NO_BACKEND)
		return sl_reject4(skb, pkt);
	return TC_ACT_SHOT;
}

/* The first packet of a flow to a frontend. */
static __always_inline int sl_tc_new_flow(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					  const struct sl_ct_key4 *key,
					  const struct sl_service_value *svc, __u64 now)
{
	struct sl_backend_value4 be;
	__u32 svc_id = svc->svc_id;
	bool hairpin;
	int ret;

	ret = sl_select_backend4(svc, pkt->saddr, false, &be);
	if (ret < 0)
		return sl_tc_refuse(skb, pkt, svc_id, -ret);
	/* The pod would receive its own address as source and drop it as a martian. */
	hairpin = be.addr == pkt->saddr;
	ret = sl_ct_create4(key, &be, svc_id, hairpin, pkt->tcp_flags, now);
	if (ret < 0) {
		sl_count_drop(-ret);
		return TC_ACT_SHOT;
	}
	sl_count_service(svc_id, skb->len, true, false);
	if (sl_nat_dst4(skb, pkt, be.addr, be.port) < 0)
		return sl_rewrite_failed();
	if (!hairpin)
		return SL_TC_PASS;
	if (sl_nat_src4(skb, pkt, pkt->daddr, pkt->sport) < 0)
		return sl_rewrite_failed();
	return sl_tc_hairpin_out(skb);
}

/*
 * To an address:port that is no frontend. A connection opening there (a TCP SYN, any UDP
 * datagram) on a ClusterIP is refused: the Service has no such port. Anything else passes; a SYN
 * first forgets a finished service flow that reused its backend tuple.
 */
static __always_inline int sl_tc_not_frontend(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					      const struct sl_ct_key4 *key, __u64 *now)
{
	bool open = sl_tcp_is_open(pkt->proto, pkt->tcp_flags);

	if ((open || pkt->proto == IPPROTO_UDP) && sl_vip_refuses_unknown4(pkt->daddr)) {
		sl_count_drop(SL_DROP_UNKNOWN_PORT);
		return sl_reject4(skb, pkt);
	}
	if (open)
		sl_ct_forget_finished4(key, now);
	return SL_TC_PASS;
}

/*
 * A client's SYN on the tuple of a finished flow (FIN or RST seen, or expired; sl_ct_lookup4
 * then answered NULL): that flow is over, and its two entries go before anything else happens.
 * Left in place, its FORWARD entry would still match every later segment of the new connection
 * (they carry no SYN) whenever Sluice does not translate the SYN itself: the frontend is gone
 * (`sluice-agent cleanup` empties the maps before detaching, the Service was deleted) and
 * kube-proxy's DNAT carries the connection. The handshake's ACK would then be sent to the old
 * flow's backend, which resets the connection. When Sluice does translate the SYN, the new
 * flow's entries replace these anyway (minus the old REVERSE entry, which this also removes).
 */
static __always_inline void sl_tc_forget_reused4(const struct sl_ct_key4 *key)
{
	struct sl_ct_value4 *val = bpf_map_lookup_elem(&sl_ct4, key);

	if (!val || val->type != SL_CT_FORWARD)
		return;
	sl_ct_delete_flow4(key, val);
}

/*
 * An ICMP error about a translated flow (icmp.h). The entry keyed by the quoted packet's mirror
 * image is the flow's: towards the pod, the quote is pod:cport -> backend:bport (what the pod
 * sent, as a router or the backend saw it) and its REVERSE entry gives the frontend, which the
 * quote's destination becomes; from the pod, the quote is frontend:fport -> pod:cport (a reply
 * it got) and its FORWARD entry gives the backend, which the quote's source becomes.
 */
static __always_inline int sl_tc_icmp_error(struct __sk_buff *skb, bool to_pod)
{
	struct sl_icmp_err4 e;
	struct sl_ct_value4 *ct = sl_icmp_err_flow4(skb, &e);

	if (!ct || ct->type != (to_pod ? SL_CT_REVERSE : SL_CT_FORWARD) ||
	    (ct->flags & SL_CT_F_HAIRPIN))
		return SL_TC_PASS;
	if (sl_icmp_err_nat4(skb, &e, to_pod, ct->nat_addr, ct->nat_port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

/* A packet of a tracked IPv6 flow in the client's direction: to the flow's backend. */
static __always_inline int sl_tc_forward6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					  const struct sl_ct_key6 *key, struct sl_ct_value6 *ct,
					  __u64 now)
{
	bool hairpin = ct->flags & SL_CT_F_HAIRPIN;
	__be32 addr[4], saddr[4];
	__be16 port = ct->nat_port;
	__u32 svc_id = ct->svc_id;

	sl_addr6_copy(addr, ct->nat_addr);
	sl_addr6_copy(saddr, ct->nat_saddr);
	sl_ct_update6(key, ct, pkt->tcp_flags, now);
	sl_count_service(svc_id, skb->len, false, false);
	if (sl_nat_dst6(skb, pkt, addr, port) < 0)
		return sl_rewrite_failed();
	if (!hairpin)
		return SL_TC_PASS;
	if (sl_nat_src6(skb, pkt, saddr, pkt->sport) < 0)
		return sl_rewrite_failed();
	return sl_tc_hairpin_out(skb);
}

/* As sl_tc_hairpin_reply: pod:bport -> frontend:cport becomes frontend:fport -> pod:cport. */
static __always_inline int sl_tc_hairpin_reply6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
						const struct sl_ct_key6 *key,
						struct sl_ct_value6 *ct, __u64 now)
{
	__be32 frontend[4];
	__be16 frontend_port = ct->nat_port;

	sl_addr6_copy(frontend, ct->nat_addr);
	sl_ct_update6(key, ct, pkt->tcp_flags, now);
	if (sl_nat_src6(skb, pkt, frontend, frontend_port) < 0)
		return sl_rewrite_failed();
	if (sl_nat_dst6(skb, pkt, key->saddr, pkt->dport) < 0)
		return sl_rewrite_failed();
	return sl_tc_hairpin_out(skb);
}

/* As sl_tc_refuse: TCP RST / ICMPv6 port unreachable, or a counted drop for a Local policy. */
static __always_inline int sl_tc_refuse6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					 __u32 svc_id, int reason)
{
	sl_count_drop(reason);
	sl_count_service(svc_id, 0, false, true);
	if (reason == SL_DROP_NO_BACKEND)
		return sl_reject6(skb, pkt);
	return TC_ACT_SHOT;
}

/* The first packet of an IPv6 flow to a frontend (as sl_tc_new_flow). */
static __always_inline int sl_tc_new_flow6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					   const struct sl_ct_key6 *key,
					   const struct sl_service_value *svc, __u64 now)
{
	struct sl_backend_value6 be;
	__u32 svc_id = svc->svc_id;
	bool hairpin;
	int ret;

	ret = sl_select_backend6(svc, pkt->saddr, false, &be);
	if (ret < 0)
		return sl_tc_refuse6(skb, pkt, svc_id, -ret);
	/* The pod would receive its own address as source and drop it. */
	hairpin = sl_addr6_eq(be.addr, pkt->saddr);
	ret = sl_ct_create6(key, &be, svc_id, hairpin, pkt->tcp_flags, now);
	if (ret < 0) {
		sl_count_drop(-ret);
		return TC_ACT_SHOT;
	}
	sl_count_service(svc_id, skb->len, true, false);
	if (sl_nat_dst6(skb, pkt, be.addr, be.port) < 0)
		return sl_rewrite_failed();
	if (!hairpin)
		return SL_TC_PASS;
	if (sl_nat_src6(skb, pkt, pkt->daddr, pkt->sport) < 0)
		return sl_rewrite_failed();
	return sl_tc_hairpin_out(skb);
}

/*
 * To an IPv6 address:port that is no frontend: as sl_tc_not_frontend, a ClusterIP refuses it,
 * and a SYN first forgets a finished service flow that reused its backend tuple.
 */
static __always_inline int sl_tc_not_frontend6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					       const struct sl_ct_key6 *key, __u64 *now)
{
	bool open = sl_tcp_is_open(pkt->proto, pkt->tcp_flags);

	if ((open || pkt->proto == IPPROTO_UDP) && sl_vip_refuses_unknown6(pkt->daddr)) {
		sl_count_drop(SL_DROP_UNKNOWN_PORT);
		return sl_reject6(skb, pkt);
	}
	if (open)
		sl_ct_forget_finished6(key, now);
	return SL_TC_PASS;
}

/* As sl_tc_forget_reused4: a SYN on the tuple of a finished IPv6 flow drops its entries first. */
static __always_inline void sl_tc_forget_reused6(const struct sl_ct_key6 *key)
{
	struct sl_ct_value6 *val = bpf_map_lookup_elem(&sl_ct6, key);

	if (!val || val->type != SL_CT_FORWARD)
		return;
	sl_ct_remove_flow6(key, val);
}

/* An ICMPv6 error about a translated flow (icmp6.h): the entries are chosen as sl_tc_icmp_error. */
static __always_inline int sl_tc_icmp6_error(struct __sk_buff *skb, bool to_pod)
{
	struct sl_icmp6_err e;
	struct sl_ct_value6 *ct = sl_icmp6_err_flow(skb, &e);
	__be32 addr[4];

	if (!ct || ct->type != (to_pod ? SL_CT_REVERSE : SL_CT_FORWARD) ||
	    (ct->flags & SL_CT_F_HAIRPIN))
		return SL_TC_PASS;
	sl_addr6_copy(addr, ct->nat_addr);
	if (sl_icmp6_err_nat(skb, &e, to_pod, addr, ct->nat_port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

/* What an IPv6 pod sends: the twin of sl_tc_from_pod, branch for branch. */
static __always_inline int sl_tc_from_pod6(struct __sk_buff *skb)
{
	struct sl_service_value *svc;
	struct sl_ct_value6 *ct;
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;
	__u64 now = 0;
	int ret;

	ret = sl_parse6(skb, &pkt);
	if (ret == SL_PARSE_SKIP)
		return sl_tc_icmp6_error(skb, false);
	if (ret != SL_PARSE_OK)
		return SL_TC_PASS;
	sl_ct_key_from_pkt6(&pkt, &key);
	ct = sl_ct_lookup6(&key, pkt.tcp_flags, &now);
	if (ct) {
		if (ct->type == SL_CT_FORWARD)
			return sl_tc_forward6(skb, &pkt, &key, ct, now);
		if (ct->flags & SL_CT_F_HAIRPIN)
			return sl_tc_hairpin_reply6(skb, &pkt, &key, ct, now);
		/* A local backend answering: reverse-NATed at the client's sl_tc_to_pod. */
		return SL_TC_PASS;
	}
	if (sl_tcp_is_open(pkt.proto, pkt.tcp_flags))
		sl_tc_forget_reused6(&key);
	svc = sl_lookup_frontend6(pkt.daddr, pkt.dport, pkt.proto);
	if (!svc)
		return sl_tc_not_frontend6(skb, &pkt, &key, &now);
	/* As IPv4: a mid-stream segment of a flow someone else translated is left alone. */
	if (pkt.proto == IPPROTO_TCP && !(pkt.tcp_flags & SL_TCP_FLAG_SYN) &&
	    (svc->count || svc->local_count)) {
		sl_handoff_to_previous(skb, SL_HANDOFF_INGRESS);
		return SL_TC_PASS;
	}
	if (!now)
		now = bpf_ktime_get_ns();
	return sl_tc_new_flow6(skb, &pkt, &key, svc, now);
}

/* What an IPv6 pod receives: a reply of a tracked flow comes from the frontend. */
static __always_inline int sl_tc_to_pod6(struct __sk_buff *skb)
{
	struct sl_ct_value6 *ct;
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;
	__be32 addr[4];
	__be16 port;
	__u64 now = 0;
	int ret;

	ret = sl_parse6(skb, &pkt);
	if (ret == SL_PARSE_SKIP)
		return sl_tc_icmp6_error(skb, true);
	if (ret != SL_PARSE_OK)
		return SL_TC_PASS;
	sl_ct_key_from_pkt6(&pkt, &key);
	ct = sl_ct_lookup6(&key, pkt.tcp_flags, &now);
	if (!ct)
		sl_handoff_to_previous(skb, SL_HANDOFF_EGRESS);
	if (!ct || ct->type != SL_CT_REVERSE || (ct->flags & SL_CT_F_HAIRPIN))
		return SL_TC_PASS;
	sl_addr6_copy(addr, ct->nat_addr);
	port = ct->nat_port;
	sl_ct_update6(&key, ct, pkt.tcp_flags, now);
	if (sl_nat_src6(skb, &pkt, addr, port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

SEC("tc")
int sl_tc_from_pod(struct __sk_buff *skb)
{
	struct sl_service_value *svc;
	struct sl_ct_value4 *ct;
	struct sl_ct_key4 key;
	struct sl_pkt4 pkt;
	__u64 now = 0;
	int ret;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return sl_tc_from_pod6(skb);
	ret = sl_ct_parse_lookup4(skb, &pkt, &key, &ct, &now);
	if (ret == SL_PARSE_SKIP)
		return sl_tc_icmp_error(skb, false);
	if (ret != SL_PARSE_OK)
		return SL_TC_PASS;
	if (ct) {
		if (ct->type == SL_CT_FORWARD)
			return sl_tc_forward(skb, &pkt, &key, ct, now);
		if (ct->flags & SL_CT_F_HAIRPIN)
			return sl_tc_hairpin_reply(skb, &pkt, &key, ct, now);
		/* A local backend answering: reverse-NATed at the client's sl_tc_to_pod. */
		return SL_TC_PASS;
	}
	if (sl_tcp_is_open(pkt.proto, pkt.tcp_flags))
		sl_tc_forget_reused4(&key);
	svc = sl_lookup_frontend4(pkt.daddr, pkt.dport, pkt.proto);
	if (!svc)
		return sl_tc_not_frontend(skb, &pkt, &key, &now);
	/*
	 * A TCP segment to a frontend with backends that opens nothing and belongs to no tracked
	 * flow was translated by someone else: a connection kube-proxy's DNAT carries (opened
	 * before Sluice started, or beside it on AKS). A backend picked now would only reset it.
	 * (A service without endpoints still refuses it below, as kube-proxy does.)
	 */
	if (pkt.proto == IPPROTO_TCP && !(pkt.tcp_flags & SL_TCP_FLAG_SYN) &&
	    (svc->count || svc->local_count)) {
		/* Or one the previous build opened in the instant of an upgrade's switch. */
		sl_handoff_to_previous(skb, SL_HANDOFF_INGRESS);
		return SL_TC_PASS;
	}
	if (!now)
		now = bpf_ktime_get_ns();
	return sl_tc_new_flow(skb, &pkt, &key, svc, now);
}

SEC("tc")
int sl_tc_to_pod(struct __sk_buff *skb)
{
	struct sl_ct_value4 *ct;
	struct sl_ct_key4 key;
	struct sl_pkt4 pkt;
	__u64 now = 0;
	int ret;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return sl_tc_to_pod6(skb);
	ret = sl_ct_parse_lookup4(skb, &pkt, &key, &ct, &now);
	if (ret == SL_PARSE_SKIP)
		return sl_tc_icmp_error(skb, true);
	if (ret != SL_PARSE_OK)
		return SL_TC_PASS;
	/* Maybe the reply of a flow the previous build opened in the instant of an upgrade. */
	if (!ct)
		sl_handoff_to_previous(skb, SL_HANDOFF_EGRESS);
	if (!ct || ct->type != SL_CT_REVERSE || (ct->flags & SL_CT_F_HAIRPIN))
		return SL_TC_PASS;
	if (sl_nat_reply4(skb, &pkt, &key, ct, now) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
