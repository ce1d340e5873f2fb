/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors about translated flows (TC path). An ICMP destination-unreachable or time-exceeded
 * quotes the offending packet as it travelled: between the client and the BACKEND. The client's
 * socket is connected to the FRONTEND, so an untranslated error would match no socket: path-MTU
 * discovery ("fragmentation needed") would black-hole large segments and a UDP client would
 * wait for a timeout instead of seeing ECONNREFUSED. These helpers find the quoted packet and
 * rewrite one of its ends, with the quoted IP and L4 checksums and the ICMP checksum kept valid.
 */
#ifndef SL_LIB_ICMP_H
#define SL_LIB_ICMP_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "parse.h"
#include "csum.h"

/*
 * ICMP (RFC 792) wire format. <linux/icmp.h> drags in libc headers through <linux/if.h>, which a
 * BPF build cannot use, so the few bits needed are here.
 */
#define SL_ICMP_DEST_UNREACH  3
#define SL_ICMP_PORT_UNREACH  3 /* code of SL_ICMP_DEST_UNREACH */
#define SL_ICMP_FRAG_NEEDED   4 /* code of SL_ICMP_DEST_UNREACH: next-hop MTU in rest */
#define SL_ICMP_TIME_EXCEEDED 11

struct sl_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* zero for errors but "fragmentation needed" (next-hop MTU) */
};
_Static_assert(sizeof(struct sl_icmphdr) == 8, "sl_icmphdr size");

/* Ethernet, outer IPv4 (max), ICMP header, quoted IPv4 (max), the quoted L4 ports and checksum. */
#define SL_ICMP_PULL_LEN (ETH_HLEN + 60 + 8 + 60 + 8)

/* An ICMP error and the TCP/UDP packet it quotes; offsets from the start of the frame. */
struct sl_icmp_err4 {
	__u32 l3_off;	 /* outer IPv4 header */
	__u32 icmp_off;	 /* ICMP header */
	__u32 in_l3_off; /* quoted IPv4 header */
	__u32 in_l4_off; /* quoted TCP/UDP header (its first 8 bytes are always quoted) */
	__be32 saddr;	 /* outer source: the host reporting the error */
	__be32 daddr;	 /* outer destination */
	__be32 in_saddr; /* the quoted packet's addresses and ports, as quoted */
	__be32 in_daddr;
	__be16 in_sport;
	__be16 in_dport;
	__u8 in_proto; /* IPPROTO_TCP or IPPROTO_UDP */
};

static __always_inline enum sl_parse_result sl_parse_icmp_err4_linear(struct __sk_buff *skb,
								      struct sl_icmp_err4 *e)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	enum sl_parse_result ret;
	struct sl_icmphdr *icmp;
	struct iphdr *ip, *in;
	__be16 *ports;

	ret = sl_parse_ip4_hdr(data, data_end, &ip);
	if (ret != SL_PARSE_OK)
		return ret;
	if (ip->protocol != IPPROTO_ICMP)
		return SL_PARSE_SKIP;
	icmp = (void *)ip + ip->ihl * 4;
	if ((void *)(icmp + 1) > data_end)
		return SL_PARSE_BAD;
	if (icmp->type != SL_ICMP_DEST_UNREACH && icmp->type != SL_ICMP_TIME_EXCEEDED)
		return SL_PARSE_SKIP;
	in = (void *)(icmp + 1);
	if ((void *)(in + 1) > data_end)
		return SL_PARSE_BAD;
	if (in->version != 4 || in->ihl < 5)
		return SL_PARSE_SKIP;
	/* A non-first fragment quotes no ports. */
	if ((in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP) ||
	    (in->frag_off & bpf_htons(SL_IP_OFFSET)))
		return SL_PARSE_SKIP;
	ports = (void *)in + in->ihl * 4;
	if ((void *)(ports + 2) > data_end)
		return SL_PARSE_BAD;

	e->l3_off = ETH_HLEN;
	e->icmp_off = ETH_HLEN + ip->ihl * 4;
	e->in_l3_off = e->icmp_off + sizeof(*icmp);
	e->in_l4_off = e->in_l3_off + in->ihl * 4;
	e->saddr = ip->saddr;
	e->daddr = ip->daddr;
	e->in_saddr = in->saddr;
	e->in_daddr = in->daddr;
	e->in_sport = ports[0];
	e->in_dport = ports[1];
	e->in_proto = in->protocol;
	return SL_PARSE_OK;
}

/* Parses an ICMP error quoting TCP/UDP; pulls a paged skb's headers in once when needed. */
static __always_inline enum sl_parse_result sl_parse_icmp_err4(struct __sk_buff *skb,
							       struct sl_icmp_err4 *e)
{
	enum sl_parse_result ret = sl_parse_icmp_err4_linear(skb, e);
	__u32 pull = SL_ICMP_PULL_LEN;

	if (ret != SL_PARSE_BAD || skb->data_end - skb->data >= skb->len)
		return ret;
	if (pull > skb->len)
		pull = skb->len;
	if (bpf_skb_pull_data(skb, pull) < 0)
		return SL_PARSE_BAD;
	return sl_parse_icmp_err4_linear(skb, e);
}

/* A checksum (as stored) after bytes before[0, len) became after[0, len); len a multiple of 4. */
static __always_inline __u16 sl_csum_update(__u16 check, void *before, void *after, __u32 len)
{
	return sl_csum_fold((__u32)bpf_csum_diff(before, len, after, len, (__u16)~check));
}

/*
 * The bytes of the ICMP message a rewrite changes, each widened to 32 bits so bpf_csum_diff can
 * sum them; every field sits at an even offset of the message, so the sums line up.
 */
struct sl_icmp_quote_fields {
	__be32 addr;
	__u32 port;	/* __be16; right after addr: the L4 update sums the two together */
	__u32 ip_check; /* quoted IPv4 header checksum (16 bits) */
	__u32 l4_check; /* quoted TCP/UDP checksum (16 bits), 0 when not quoted or UDP's "none" */
};

/*
 * Rewrites the quoted packet's destination (quoted_dst) or source to addr:port, and the outer
 * address on the same side when it names the same host (a backend reporting about its own
 * socket; a router's address stays). Returns 0 or a negative errno.
 */
static __always_inline int sl_icmp_err_nat4(struct __sk_buff *skb, const struct sl_icmp_err4 *e,
					    bool quoted_dst, __be32 addr, __be16 port)
{
	__u32 icmp_check_off = e->icmp_off + offsetof(struct sl_icmphdr, checksum);
	__u32 ip_check_off = e->in_l3_off + offsetof(struct iphdr, check);
	__u32 l4_check_off = e->in_l4_off + offsetof(struct udphdr, check);
	__u32 addr_off = e->in_l3_off + offsetof(struct iphdr, saddr);
	__u32 port_off = e->in_l4_off + offsetof(struct udphdr, source);
	__u32 outer_off = e->l3_off + offsetof(struct iphdr, daddr);
	__be32 outer = quoted_dst ? e->saddr : e->daddr;
	struct sl_icmp_quote_fields before = {}, after = {};
	__u16 ip_check = 0, l4_check = 0, v;
	bool has_l4_check;
	__s64 diff;

	if (e->in_proto == IPPROTO_TCP)
		l4_check_off = e->in_l4_off + offsetof(struct tcphdr, check);
	if (quoted_dst) {
		addr_off = e->in_l3_off + offsetof(struct iphdr, daddr);
		port_off = e->in_l4_off + offsetof(struct udphdr, dest);
		outer_off = e->l3_off + offsetof(struct iphdr, saddr);
	}
	before.addr = quoted_dst ? e->in_daddr : e->in_saddr;
	before.port = quoted_dst ? e->in_dport : e->in_sport;
	after.addr = addr;
	after.port = port;
	if (bpf_skb_load_bytes(skb, ip_check_off, &ip_check, sizeof(ip_check)) < 0)
		return -1;
	/* TCP's checksum lies past the 8 bytes every error quotes; UDP's 0 means "none". */
	has_l4_check = l4_check_off + sizeof(l4_check) <= skb->len &&
		       bpf_skb_load_bytes(skb, l4_check_off, &l4_check, sizeof(l4_check)) == 0 &&
		       (e->in_proto == IPPROTO_TCP || l4_check != 0);

	before.ip_check = ip_check;
	after.ip_check = sl_csum_update(ip_check, &before.addr, &after.addr, sizeof(before.addr));
	if (has_l4_check) {
		/* The address (pseudo-header) and the port: one update covers both. */
		before.l4_check = l4_check;
		v = sl_csum_update(l4_check, &before.addr, &after.addr, 2 * sizeof(__u32));
		after.l4_check = e->in_proto == IPPROTO_UDP && v == 0 ? 0xffff : v;
	}
	diff = bpf_csum_diff((void *)&before, sizeof(before), (void *)&after, sizeof(after), 0);

	if (bpf_skb_store_bytes(skb, addr_off, &addr, sizeof(addr), 0) < 0)
		return -1;
	v = after.ip_check;
	if (bpf_skb_store_bytes(skb, ip_check_off, &v, sizeof(v), 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, port_off, &port, sizeof(port), 0) < 0)
		return -1;
	if (has_l4_check) {
		v = after.l4_check;
		if (bpf_skb_store_bytes(skb, l4_check_off, &v, sizeof(v), 0) < 0)
			return -1;
	}
	/* ICMP has no pseudo-header: only the quoted bytes move its checksum. */
	if (bpf_l4_csum_replace(skb, icmp_check_off, 0, diff, 0) < 0)
		return -1;
	if (outer != before.addr)
		return 0;
	if (bpf_skb_store_bytes(skb, outer_off, &addr, sizeof(addr), 0) < 0)
		return -1;
	return bpf_l3_csum_replace(skb, e->l3_off + offsetof(struct iphdr, check), before.addr,
				   addr, sizeof(addr));
}

#endif /* SL_LIB_ICMP_H */
