/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ethernet / IPv6 / TCP-UDP parsing for the TC programs (the IPv6 side of lib/parse.h).
 *
 * Only a fixed header followed directly by TCP or UDP is translated. ICMPv6 (neighbour
 * discovery included) is never touched: SL_PARSE_SKIP. A packet with extension headers (hop-by-hop,
 * routing, fragment, destination options, ...) is passed untouched too, and counted
 * (sl_ipv6_untranslated) unless it goes to a multicast group: walking them is left for later,
 * and a fragment could not be translated anyway (see parse.h). Multicast is never a frontend,
 * and every pod's kernel sends MLD reports (ICMPv6 behind a hop-by-hop Router Alert option) to
 * ff02::16 when it joins a group: counting those would make the counter noise.
 */
#ifndef SL_LIB_PARSE6_H
#define SL_LIB_PARSE6_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "parse.h"

#define SL_IPV6_HLEN 40

struct sl_pkt6 {
	__u32 l3_off; /* IPv6 header */
	__u32 l4_off; /* TCP/UDP header */
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;	/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 tcp_flags; /* SL_TCP_FLAG_*, 0 for UDP */
};

/* Next-header values that are neither an upper-layer protocol we translate nor ICMPv6. */
static __always_inline bool sl_ipv6_is_exthdr(__u8 nexthdr)
{
	switch (nexthdr) {
	case 0:	  /* hop-by-hop options */
	case 43:  /* routing */
	case 44:  /* fragment */
	case 50:  /* ESP */
	case 51:  /* AH */
	case 60:  /* destination options */
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		return true;
	default:
		return false;
	}
}

/* Counts an IPv6 packet passed untouched because of its extension headers. */
static __always_inline void sl_count_ipv6_untranslated(void)
{
	__u32 key = 0;
	__u64 *val = bpf_map_lookup_elem(&sl_ipv6_untranslated, &key);

	if (val)
		*val += 1;
}

static __always_inline enum sl_parse_result sl_parse6_linear(struct __sk_buff *skb,
							     struct sl_pkt6 *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	void *l4;

	if ((void *)(eth + 1) > data_end)
		return SL_PARSE_BAD;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return SL_PARSE_SKIP;
	ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > data_end)
		return SL_PARSE_BAD;
	if (ip6->version != 6)
		return SL_PARSE_BAD;
	if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP) {
		if (sl_ipv6_is_exthdr(ip6->nexthdr) && ip6->daddr.in6_u.u6_addr8[0] != 0xff)
			sl_count_ipv6_untranslated();
		return SL_PARSE_SKIP;
	}
	l4 = ip6 + 1;
	pkt->l3_off = ETH_HLEN;
	pkt->l4_off = ETH_HLEN + SL_IPV6_HLEN;
	__builtin_memcpy(pkt->saddr, &ip6->saddr, 16);
	__builtin_memcpy(pkt->daddr, &ip6->daddr, 16);
	pkt->proto = ip6->nexthdr;
	if (pkt->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end)
			return SL_PARSE_BAD;
		pkt->sport = tcp->source;
		pkt->dport = tcp->dest;
		pkt->tcp_flags = ((__u8 *)tcp)[SL_TCP_FLAGS_OFF];
	} else {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end)
			return SL_PARSE_BAD;
		pkt->sport = udp->source;
		pkt->dport = udp->dest;
		pkt->tcp_flags = 0;
	}
	return SL_PARSE_OK;
}

/* As sl_parse4: pulls the headers into the linear area once when they are not. */
static __always_inline enum sl_parse_result sl_parse6(struct __sk_buff *skb, struct sl_pkt6 *pkt)
{
	enum sl_parse_result ret = sl_parse6_linear(skb, pkt);
	__u32 pull = SL_PARSE_PULL_LEN;

	if (ret != SL_PARSE_BAD)
		return ret;
	if (skb->data_end - skb->data >= skb->len)
		return SL_PARSE_BAD;
	if (pull > skb->len)
		pull = skb->len;
	if (bpf_skb_pull_data(skb, pull) < 0)
		return SL_PARSE_BAD;
	return sl_parse6_linear(skb, pkt);
}

#endif /* SL_LIB_PARSE6_H */
