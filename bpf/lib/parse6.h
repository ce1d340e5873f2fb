/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ethernet / IPv6 / TCP-UDP parsing for the TC programs (the IPv6 side of lib/parse.h).
 *
 * TCP and UDP are translated right after the fixed header or behind up to SL_IPV6_EXTHDR_MAX
 * extension headers: hop-by-hop options, destination options, routing (segments left 0) and AH
 * are walked, and l4_off points past them, so NAT and checksum code rewrite the right bytes
 * (l3_off stays the fixed header: its addresses are the pseudo-header's). The walk is an
 * unrolled loop of bpf_skb_load_bytes at a scalar offset: no packet-pointer arithmetic on
 * variable lengths for the verifier to track (5.10 included), and headers beyond the linear area
 * are read without a pull. The fast path (no extension header) reads the packet directly.
 *
 * ICMPv6 (neighbour discovery included), wherever it sits in the chain, is never touched:
 * SL_PARSE_SKIP, uncounted, as any other upper-layer protocol. Passed untouched and counted in
 * sl_ipv6_untranslated (SL_PARSE_SKIP):
 *  - a routing header with segments left > 0: the fixed header's destination is the next
 *    waypoint, not the final one (SRv6, type 0), so neither the frontend lookup nor the
 *    pseudo-header would be right;
 *  - a fragment header (first fragment or not): a non-first fragment has no L4 header, and
 *    translating only the first would desynchronise the datagram (as IPv4 fragments, parse.h);
 *  - ESP, mobility, HIP, shim6 (not walked), or more than SL_IPV6_EXTHDR_MAX headers;
 * unless the packet goes to a multicast group: multicast is never a frontend and is skipped
 * before the walk; every pod's kernel sends MLD reports (ICMPv6 behind a hop-by-hop Router Alert
 * option) to ff02::16 when it joins a group, and counting those would make the counter noise.
 * A translated AH packet fails its receiver's integrity check (AH covers the addresses), as
 * under any NAT. A walked chain cut short by the end of the packet is SL_PARSE_BAD.
 *
 * Every program that parses with sl_parse6 gets the walk (the counting is sl_parse6's);
 * sl_ipv6_walk_exthdrs alone walks without counting (icmp6.h: the packet an ICMPv6 error quotes).
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
/* Extension headers walked before the packet is given up on (passed, counted). */
#define SL_IPV6_EXTHDR_MAX 4

#define SL_NEXTHDR_HOP	    0
#define SL_NEXTHDR_ROUTING  43
#define SL_NEXTHDR_FRAGMENT 44
#define SL_NEXTHDR_AH	    51
#define SL_NEXTHDR_DEST	    60

struct sl_pkt6 {
	__u32 l3_off; /* IPv6 fixed header */
	__u32 l4_off; /* TCP/UDP header, past any extension headers */
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

/* The extension headers the walk steps over (the others end it: see the header comment). */
static __always_inline bool sl_ipv6_is_walked(__u8 nexthdr)
{
	return nexthdr == SL_NEXTHDR_HOP || nexthdr == SL_NEXTHDR_DEST ||
	       nexthdr == SL_NEXTHDR_ROUTING || nexthdr == SL_NEXTHDR_AH;
}

/* Counts an IPv6 packet passed untouched because of its extension headers. */
static __always_inline void sl_count_ipv6_untranslated(void)
{
	__u32 key = 0;
	__u64 *val = bpf_map_lookup_elem(&sl_ipv6_untranslated, &key);

	if (val)
		*val += 1;
}

/*
 * The first four bytes of every walked header: next header and length (AH: in 4-byte units
 * minus 2; the others: in 8-byte units minus 1), then routing's type and segments left.
 */
struct sl_ipv6_exthdr {
	__u8 nexthdr;
	__u8 hdrlen;
	__u8 routing_type;
	__u8 segments_left;
};

/* The walk's verdict besides enum sl_parse_result: passed because of the extension headers. */
#define SL_PARSE6_UNTRANSLATED 3

/*
 * Walks the extension headers starting with *nexthdr at frame offset *off (right after the
 * fixed header). SL_PARSE_OK: *nexthdr is TCP or UDP and *off its header. SL_PARSE_SKIP: another
 * upper-layer protocol (ICMPv6 included). SL_PARSE6_UNTRANSLATED: see the header comment.
 * SL_PARSE_BAD: a header lies beyond the packet.
 */
static __always_inline int sl_ipv6_walk_exthdrs(struct __sk_buff *skb, __u8 *nexthdr, __u32 *off)
{
	struct sl_ipv6_exthdr h;
	__u8 next = *nexthdr;
	__u32 pos = *off;
	int i;

#pragma unroll
	for (i = 0; i < SL_IPV6_EXTHDR_MAX; i++) {
		if (!sl_ipv6_is_walked(next))
			break;
		if (bpf_skb_load_bytes(skb, pos, &h, sizeof(h)) < 0)
			return SL_PARSE_BAD;
		/* The fixed header's destination is a waypoint: no frontend, no pseudo-header. */
		if (next == SL_NEXTHDR_ROUTING && h.segments_left)
			return SL_PARSE6_UNTRANSLATED;
		if (next == SL_NEXTHDR_AH)
			pos += ((__u32)h.hdrlen + 2) * 4;
		else
			pos += ((__u32)h.hdrlen + 1) * 8;
		next = h.nexthdr;
	}
	*nexthdr = next;
	*off = pos;
	if (next == IPPROTO_TCP || next == IPPROTO_UDP)
		return SL_PARSE_OK;
	/* Fragment, ESP, mobility, HIP, shim6, or a walked header past the bound. */
	if (sl_ipv6_is_exthdr(next))
		return SL_PARSE6_UNTRANSLATED;
	return SL_PARSE_SKIP;
}

/* TCP/UDP behind extension headers at l4_off, read with bpf_skb_load_bytes (no packet pointers). */
static __always_inline enum sl_parse_result sl_parse6_exthdrs(struct __sk_buff *skb,
							      struct sl_pkt6 *pkt, __u8 nexthdr)
{
	__u32 off = ETH_HLEN + SL_IPV6_HLEN;
	int ret = sl_ipv6_walk_exthdrs(skb, &nexthdr, &off);

	if (ret == SL_PARSE6_UNTRANSLATED) {
		sl_count_ipv6_untranslated();
		return SL_PARSE_SKIP;
	}
	if (ret != SL_PARSE_OK)
		return ret;
	pkt->l4_off = off;
	pkt->proto = nexthdr;
	if (nexthdr == IPPROTO_TCP) {
		struct tcphdr tcp;

		if (bpf_skb_load_bytes(skb, off, &tcp, sizeof(tcp)) < 0)
			return SL_PARSE_BAD;
		pkt->sport = tcp.source;
		pkt->dport = tcp.dest;
		pkt->tcp_flags = ((__u8 *)&tcp)[SL_TCP_FLAGS_OFF];
	} else {
		struct udphdr udp;

		if (bpf_skb_load_bytes(skb, off, &udp, sizeof(udp)) < 0)
			return SL_PARSE_BAD;
		pkt->sport = udp.source;
		pkt->dport = udp.dest;
		pkt->tcp_flags = 0;
	}
	return SL_PARSE_OK;
}

static __always_inline enum sl_parse_result sl_parse6_linear(struct __sk_buff *skb,
							     struct sl_pkt6 *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	__u8 nexthdr;
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
	nexthdr = ip6->nexthdr;
	if (nexthdr != IPPROTO_TCP && nexthdr != IPPROTO_UDP &&
	    (!sl_ipv6_is_exthdr(nexthdr) || ip6->daddr.in6_u.u6_addr8[0] == 0xff))
		return SL_PARSE_SKIP; /* ICMPv6 and the like, or multicast with extension headers */
	pkt->l3_off = ETH_HLEN;
	__builtin_memcpy(pkt->saddr, &ip6->saddr, 16);
	__builtin_memcpy(pkt->daddr, &ip6->daddr, 16);
	if (nexthdr != IPPROTO_TCP && nexthdr != IPPROTO_UDP)
		return sl_parse6_exthdrs(skb, pkt, nexthdr);
	l4 = ip6 + 1;
	pkt->l4_off = ETH_HLEN + SL_IPV6_HLEN;
	pkt->proto = nexthdr;
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
