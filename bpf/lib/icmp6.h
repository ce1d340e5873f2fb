/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMPv6 errors about translated flows (TC path; the IPv6 side of lib/icmp.h). Destination
 * unreachable, Packet Too Big and Time Exceeded (RFC 4443 3.1-3.3) quote the offending packet as
 * it travelled, between the client and the BACKEND, while the client's socket is connected to the
 * FRONTEND. IPv6 routers never fragment: an untranslated Packet Too Big would leave path-MTU
 * discovery without its answer and black-hole every large segment of the flow.
 *
 * Only those three types are read; every other ICMPv6 message (neighbour discovery, echo, MLD,
 * router advertisements, ...) is never touched. The quoted packet must be TCP or UDP behind the
 * fixed header and the extension headers lib/parse6.h walks (what it translates); anything else
 * passes (a fragment, a routing header with segments left, ESP, a quote cut before the ports).
 *
 * A rewrite changes the quoted address and port, the quoted L4 checksum (its pseudo-header holds
 * the address) and, when the reporting host is the rewritten end itself, the outer address. The
 * ICMPv6 checksum covers the quote and the outer pseudo-header: both updates go into it.
 */
#ifndef SL_LIB_ICMP6_H
#define SL_LIB_ICMP6_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"
#include "maps.h"
#include "parse6.h"
#include "csum.h"
#include "icmp.h"
#include "reject6.h"

#define SL_ICMP6_PKT_TOOBIG  2
#define SL_ICMP6_TIME_EXCEED 3

/*
 * Ethernet, outer IPv6, ICMPv6 header, quoted IPv6 header, the quoted ports and UDP checksum (the
 * quote's extension headers are read with bpf_skb_load_bytes, wherever they lie).
 */
#define SL_ICMP6_PULL_LEN (ETH_HLEN + SL_IPV6_HLEN + 8 + SL_IPV6_HLEN + 8)

/* An ICMPv6 error and the TCP/UDP packet it quotes; offsets from the start of the frame. */
struct sl_icmp6_err {
	__u32 l3_off;	 /* outer IPv6 header */
	__u32 icmp_off;	 /* ICMPv6 header */
	__u32 in_l3_off; /* quoted IPv6 header */
	__u32 in_l4_off; /* quoted TCP/UDP header (its first 8 bytes are always quoted) */
	__be32 saddr[4]; /* outer source: the host reporting the error */
	__be32 daddr[4]; /* outer destination */
	__be32 in_saddr[4];
	__be32 in_daddr[4];
	__be16 in_sport;
	__be16 in_dport;
	__u8 in_proto; /* IPPROTO_TCP or IPPROTO_UDP */
};

static __always_inline bool sl_icmp6_is_error_about_flow(__u8 type)
{
	return type == SL_ICMP6_DEST_UNREACH || type == SL_ICMP6_PKT_TOOBIG ||
	       type == SL_ICMP6_TIME_EXCEED;
}

static __always_inline enum sl_parse_result sl_parse_icmp6_err_linear(struct __sk_buff *skb,
								      struct sl_icmp6_err *e)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct sl_icmphdr *icmp;
	struct ipv6hdr *ip, *in;
	__be16 *ports, quoted_ports[2];
	__u8 next;
	int ret;

	if ((void *)(eth + 1) > data_end)
		return SL_PARSE_BAD;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return SL_PARSE_SKIP;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return SL_PARSE_BAD;
	if (ip->nexthdr != SL_IPPROTO_ICMPV6)
		return SL_PARSE_SKIP;
	icmp = (void *)(ip + 1);
	if ((void *)(icmp + 1) > data_end)
		return SL_PARSE_BAD;
	if (!sl_icmp6_is_error_about_flow(icmp->type))
		return SL_PARSE_SKIP;
	in = (void *)(icmp + 1);
	if ((void *)(in + 1) > data_end)
		return SL_PARSE_BAD;
	next = in->nexthdr;
	if (in->version != 6 ||
	    (next != IPPROTO_TCP && next != IPPROTO_UDP && !sl_ipv6_is_exthdr(next)))
		return SL_PARSE_SKIP;

	e->l3_off = ETH_HLEN;
	e->icmp_off = ETH_HLEN + SL_IPV6_HLEN;
	e->in_l3_off = e->icmp_off + sizeof(*icmp);
	e->in_l4_off = e->in_l3_off + SL_IPV6_HLEN;
	__builtin_memcpy(e->saddr, &ip->saddr, 16);
	__builtin_memcpy(e->daddr, &ip->daddr, 16);
	__builtin_memcpy(e->in_saddr, &in->saddr, 16);
	__builtin_memcpy(e->in_daddr, &in->daddr, 16);
	if (next == IPPROTO_TCP || next == IPPROTO_UDP) {
		ports = (void *)(in + 1);
		if ((void *)(ports + 2) > data_end)
			return SL_PARSE_BAD;
		e->in_sport = ports[0];
		e->in_dport = ports[1];
		e->in_proto = next;
		return SL_PARSE_OK;
	}
	/*
	 * A quote with extension headers: walked as parse6.h walks a packet (what it translated can
	 * be quoted back). Anything it would not translate (fragment, routing with segments left,
	 * ...) passes, uncounted: the error is not the packet.
	 */
	ret = sl_ipv6_walk_exthdrs(skb, &next, &e->in_l4_off);
	if (ret != SL_PARSE_OK)
		return ret == SL_PARSE_BAD ? SL_PARSE_BAD : SL_PARSE_SKIP;
	if (bpf_skb_load_bytes(skb, e->in_l4_off, quoted_ports, sizeof(quoted_ports)) < 0)
		return SL_PARSE_BAD;
	e->in_sport = quoted_ports[0];
	e->in_dport = quoted_ports[1];
	e->in_proto = next;
	return SL_PARSE_OK;
}

/* Parses an ICMPv6 error quoting TCP/UDP; pulls a paged skb's headers in once when needed. */
static __always_inline enum sl_parse_result sl_parse_icmp6_err(struct __sk_buff *skb,
							       struct sl_icmp6_err *e)
{
	enum sl_parse_result ret = sl_parse_icmp6_err_linear(skb, e);
	__u32 pull = SL_ICMP6_PULL_LEN;

	if (ret != SL_PARSE_BAD || skb->data_end - skb->data >= skb->len)
		return ret;
	if (pull > skb->len)
		pull = skb->len;
	if (bpf_skb_pull_data(skb, pull) < 0)
		return SL_PARSE_BAD;
	return sl_parse_icmp6_err_linear(skb, e);
}

/* Parses an ICMPv6 error into *e; its flow's sl_ct6 entry (mirror key of the quote), or NULL. */
static __always_inline struct sl_ct_value6 *sl_icmp6_err_flow(struct __sk_buff *skb,
							      struct sl_icmp6_err *e)
{
	struct sl_ct_key6 key = {};

	if (sl_parse_icmp6_err(skb, e) != SL_PARSE_OK)
		return NULL;
	__builtin_memcpy(key.saddr, e->in_daddr, 16);
	__builtin_memcpy(key.daddr, e->in_saddr, 16);
	key.sport = e->in_dport;
	key.dport = e->in_sport;
	key.proto = e->in_proto;
	return bpf_map_lookup_elem(&sl_ct6, &key);
}

/*
 * The quoted bytes a rewrite changes, 16-bit fields widened to 32 bits so bpf_csum_diff can sum
 * them; each sits at an even offset of the ICMPv6 message, so the sums line up.
 */
struct sl_icmp6_quote_fields {
	__be32 addr[4];
	__u32 port;	/* __be16; right after addr: the L4 update sums the two together */
	__u32 l4_check; /* quoted TCP/UDP checksum, 0 when not quoted or UDP's (invalid) "none" */
};

/*
 * Rewrites the quoted packet's destination (quoted_dst) or source to addr:port, and the outer
 * address on the same side when it names the same host (a backend reporting about its own
 * socket; a router's address stays). Returns 0 or a negative errno.
 */
static __always_inline int sl_icmp6_err_nat(struct __sk_buff *skb, const struct sl_icmp6_err *e,
					    bool quoted_dst, const __be32 *addr, __be16 port)
{
	__u32 icmp_check_off = e->icmp_off + offsetof(struct sl_icmphdr, checksum);
	__u32 l4_check_off = e->in_l4_off + offsetof(struct udphdr, check);
	__u32 addr_off = e->in_l3_off + offsetof(struct ipv6hdr, saddr);
	__u32 port_off = e->in_l4_off + offsetof(struct udphdr, source);
	__u32 outer_off = e->l3_off + offsetof(struct ipv6hdr, daddr);
	const __be32 *outer = quoted_dst ? e->saddr : e->daddr;
	struct sl_icmp6_quote_fields before = {}, after = {};
	__be32 outer_old[4];
	__u16 l4_check = 0, v;
	bool has_l4_check;
	__s64 diff;

	if (e->in_proto == IPPROTO_TCP)
		l4_check_off = e->in_l4_off + offsetof(struct tcphdr, check);
	if (quoted_dst) {
		addr_off = e->in_l3_off + offsetof(struct ipv6hdr, daddr);
		port_off = e->in_l4_off + offsetof(struct udphdr, dest);
		outer_off = e->l3_off + offsetof(struct ipv6hdr, saddr);
	}
	sl_addr6_copy(before.addr, quoted_dst ? e->in_daddr : e->in_saddr);
	before.port = quoted_dst ? e->in_dport : e->in_sport;
	sl_addr6_copy(after.addr, addr);
	after.port = port;
	sl_addr6_copy(outer_old, outer);
	/* TCP's checksum lies past the 8 bytes every error quotes; a UDP 0 is left as it is. */
	has_l4_check = l4_check_off + sizeof(l4_check) <= skb->len &&
		       bpf_skb_load_bytes(skb, l4_check_off, &l4_check, sizeof(l4_check)) == 0 &&
		       (e->in_proto == IPPROTO_TCP || l4_check != 0);
	if (has_l4_check) {
		/* The address (pseudo-header) and the port: one update covers both. */
		before.l4_check = l4_check;
		v = sl_csum_update(l4_check, before.addr, after.addr, sizeof(before.addr) + 4);
		after.l4_check = e->in_proto == IPPROTO_UDP && v == 0 ? 0xffff : v;
	}
	diff = bpf_csum_diff((void *)&before, sizeof(before), (void *)&after, sizeof(after), 0);

	if (bpf_skb_store_bytes(skb, addr_off, addr, 16, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, port_off, &port, sizeof(port), 0) < 0)
		return -1;
	if (has_l4_check) {
		v = after.l4_check;
		if (bpf_skb_store_bytes(skb, l4_check_off, &v, sizeof(v), 0) < 0)
			return -1;
	}
	if (bpf_l4_csum_replace(skb, icmp_check_off, 0, diff, 0) < 0)
		return -1;
	if (!sl_addr6_eq(outer_old, before.addr))
		return 0;
	/* The outer address is in the ICMPv6 pseudo-header only. */
	if (bpf_skb_store_bytes(skb, outer_off, addr, 16, 0) < 0)
		return -1;
	diff = bpf_csum_diff(outer_old, 16, (void *)addr, 16, 0);
	return bpf_l4_csum_replace(skb, icmp_check_off, 0, diff, BPF_F_PSEUDO_HDR);
}

#endif /* SL_LIB_ICMP6_H */
