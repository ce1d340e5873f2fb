/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * External traffic in IPv6 on the host interfaces (host.bpf.c hands every IPv6 frame here): the
 * IPv4 rules of host.bpf.c over sl_frontends6 and sl_ct6 (docs/ipv6.md, docs/external-traffic.md).
 *
 *  ingress: a new flow to a frontend flagged SL_SVC_F_EXTERNAL picks a backend (lb6.h: the Local
 *    set for eTP=Local; none there -> drop, none at all -> TCP RST / ICMPv6 port unreachable);
 *    a backend on this node: DNAT only, the kernel routes it to the pod, which sees the client;
 *    later packets (FORWARD entry flagged EXTERNAL): the same rewrite.
 *  egress: a local backend's reply (REVERSE, EXTERNAL): source back to the frontend.
 *
 * Not in IPv6 (yet): ICMPv6 errors about external flows pass untouched; packets with extension
 * headers pass untouched (lib/parse6.h).
 */
#ifndef SL_LIB_HOST6_H
#define SL_LIB_HOST6_H

#include <stdbool.h>
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

/* A packet of a tracked external IPv6 flow from its client: to the flow's backend. */
static __always_inline int sl_host_forward6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					    const struct sl_ct_key6 *key, struct sl_ct_value6 *ct,
					    __u64 now)
{
	__be32 backend_addr[4];
	__be16 backend_port = ct->nat_port;

	sl_addr6_copy(backend_addr, ct->nat_addr);
	sl_ct_update6(key, ct, pkt->tcp_flags, now);
	sl_count_service(ct->svc_id, skb->len, false, false);
	if (sl_nat_dst6(skb, pkt, backend_addr, backend_port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS; /* the kernel routes it to the pod */
}

/* No usable backend: reject when the service has none, drop for eTP=Local (as sl_host_refuse). */
static __always_inline int sl_host_refuse6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					   const struct sl_service_value *svc, int reason)
{
	sl_count_drop(reason);
	sl_count_service(svc->svc_id, 0, false, true);
	sl_count_kind(svc->flags, 0, false, true);
	if (reason == SL_DROP_NO_BACKEND)
		return sl_reject6(skb, pkt);
	return TC_ACT_SHOT;
}

/*
 * The first packet of an external IPv6 flow: loadBalancerSourceRanges (sl_src_ranges6), then the
 * backend by Maglev as IPv4 (lib/maglev.h; the Local set and blocks without a table at random).
 */
static __always_inline int sl_host_new_flow6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					     const struct sl_ct_key6 *key,
					     const struct sl_service_value *svc)
{
	struct sl_service_value view = *svc;
	struct sl_backend_value6 be;
	int ret;

	if (!sl_src_range_allows6(svc, pkt->saddr)) {
		sl_count_drop(SL_DROP_SRC_RANGE);
		sl_count_kind(svc->flags, 0, false, true);
		return TC_ACT_SHOT;
	}
	/*
	 * A remote backend needs SNAT, which IPv6 does not have yet. So while this node has local
	 * endpoints, an eTP=Cluster flow chooses among them (every connection works, spread over
	 * this node's endpoints only) instead of failing whenever the draw lands on a remote one.
	 */
	if (view.local_count)
		view.flags |= SL_SVC_F_EXTERNAL_LOCAL;
	ret = sl_maglev_select_backend6(&view, pkt->saddr, pkt->sport, pkt->proto, &be);
	if (ret < 0)
		return sl_host_refuse6(skb, pkt, svc, -ret);
	/* Only remote endpoints: dropped, counted as IPv4 without an SNAT address. */
	if (!(be.flags & SL_BE_F_LOCAL)) {
		sl_count_drop(SL_DROP_SNAT_PORTS);
		return TC_ACT_SHOT;
	}
	ret = sl_ct_create_external6(key, &be, svc->svc_id, NULL, 0, pkt->tcp_flags,
				     bpf_ktime_get_ns());
	if (ret < 0) {
		sl_count_drop(-ret);
		return TC_ACT_SHOT;
	}
	sl_count_service(svc->svc_id, skb->len, true, false);
	sl_count_kind(svc->flags, skb->len, true, false);
	if (sl_nat_dst6(skb, pkt, be.addr, be.port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

/* What arrives at a host interface in IPv6 (sl_host_ingress; a call of its own, see there). */
static __noinline int sl_host_ingress6(struct __sk_buff *skb)
{
	struct sl_service_value *svc;
	struct sl_ct_value6 *ct;
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;
	__u64 now = 0;

	if (sl_parse6(skb, &pkt) != SL_PARSE_OK)
		return SL_TC_PASS;
	sl_ct_key_from_pkt6(&pkt, &key);
	ct = sl_ct_lookup6(&key, pkt.tcp_flags, &now);
	if (ct) {
		/* Only the entries this program made; a pod flow's reply is the pod programs'. */
		if ((ct->flags & SL_CT_F_EXTERNAL) && ct->type == SL_CT_FORWARD)
			return sl_host_forward6(skb, &pkt, &key, ct, now);
		return SL_TC_PASS;
	}
	svc = sl_lookup_frontend6(pkt.daddr, pkt.dport, pkt.proto);
	if (!svc || !(svc->flags & SL_SVC_F_EXTERNAL))
		return SL_TC_PASS;
	return sl_host_new_flow6(skb, &pkt, &key, svc);
}

/* What leaves through a host interface in IPv6 (sl_host_egress): a local backend's reply. */
static __noinline int sl_host_egress6(struct __sk_buff *skb)
{
	struct sl_ct_value6 *ct;
	struct sl_ct_key6 key;
	struct sl_pkt6 pkt;
	__be32 frontend_addr[4];
	__be16 frontend_port;
	__u64 now = 0;

	if (sl_parse6(skb, &pkt) != SL_PARSE_OK)
		return SL_TC_PASS;
	sl_ct_key_from_pkt6(&pkt, &key);
	ct = sl_ct_lookup6(&key, pkt.tcp_flags, &now);
	if (!ct || ct->type != SL_CT_REVERSE || !(ct->flags & SL_CT_F_EXTERNAL) ||
	    (ct->flags & SL_CT_F_SNAT))
		return SL_TC_PASS;
	sl_addr6_copy(frontend_addr, ct->nat_addr);
	frontend_port = ct->nat_port;
	sl_ct_update6(&key, ct, pkt.tcp_flags, now);
	if (sl_nat_src6(skb, &pkt, frontend_addr, frontend_port) < 0)
		return sl_rewrite_failed();
	return SL_TC_PASS;
}

#endif /* SL_LIB_HOST6_H */
