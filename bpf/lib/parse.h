/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ethernet / IPv4 / TCP-UDP parsing for the TC programs, with bounds checks.
 *
 * IP options are honoured: the L4 header is found at ihl * 4. Fragments are not translated:
 * a non-first fragment carries no ports, and translating only the first fragment of a datagram
 * would corrupt it, so every fragment is reported as SL_PARSE_SKIP and passes untouched. Service
 * traffic that fragments (large UDP datagrams) therefore needs connect-time load balancing;
 * tracking fragments by IP id is left for later.
 */
#ifndef SL_LIB_PARSE_H
#define SL_LIB_PARSE_H

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

/* Enough linear bytes for Ethernet, a maximal IPv4 header and a TCP header with options. */
#define SL_PARSE_PULL_LEN (ETH_HLEN + 60 + 60)

#define SL_IP_MF	 0x2000 /* more fragments (host order, in frag_off) */
#define SL_IP_OFFSET	 0x1fff /* fragment offset mask */
#define SL_TCP_FLAG_FIN	 0x01
#define SL_TCP_FLAG_SYN	 0x02
#define SL_TCP_FLAG_RST	 0x04
#define SL_TCP_FLAG_ACK	 0x10
#define SL_TCP_FLAGS_OFF 13 /* byte offset of the flags within the TCP header */

enum sl_parse_result {
	SL_PARSE_OK = 0,   /* IPv4 TCP or UDP, headers in the linear area */
	SL_PARSE_SKIP = 1, /* not ours to translate (other L3/L4, fragment): pass untouched */
	SL_PARSE_BAD = 2,  /* truncated or inconsistent headers */
};

/* What the programs need from a packet; offsets are from the start of the frame. */
struct sl_pkt4 {
	__u32 l3_off;  /* IPv4 header */
	__u32 l4_off;  /* TCP/UDP header (after IP options) */
	__u32 ip_hlen; /* IPv4 header length in bytes, options included */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;	/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 tcp_flags; /* TCP flags byte (SL_TCP_FLAG_*), 0 for UDP */
};

/*
 * The IPv4 header of an Ethernet frame in the linear area, when the frame is an unfragmented
 * IPv4 packet: SL_PARSE_OK with *out set; SL_PARSE_SKIP for other L3 protocols and fragments;
 * SL_PARSE_BAD when truncated or inconsistent. Shared by the TCP/UDP and ICMP-error parsers.
 */
static __always_inline enum sl_parse_result sl_parse_ip4_hdr(void *data, void *data_end,
							     struct iphdr **out)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end)
		return SL_PARSE_BAD;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return SL_PARSE_SKIP;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return SL_PARSE_BAD;
	if (ip->version != 4 || ip->ihl < 5)
		return SL_PARSE_BAD;
	if (ip->frag_off & bpf_htons(SL_IP_MF | SL_IP_OFFSET))
		return SL_PARSE_SKIP;
	*out = ip;
	return SL_PARSE_OK;
}

static __always_inline enum sl_parse_result sl_parse4_linear(struct __sk_buff *skb,
							     struct sl_pkt4 *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	enum sl_parse_result ret;
	struct iphdr *ip;
	__u32 hlen;
	void *l4;

	ret = sl_parse_ip4_hdr(data, data_end, &ip);
	if (ret != SL_PARSE_OK)
		return ret;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return SL_PARSE_SKIP;
	hlen = ip->ihl * 4;
	l4 = (void *)ip + hlen;

	pkt->l3_off = ETH_HLEN;
	pkt->ip_hlen = hlen;
	pkt->l4_off = ETH_HLEN + hlen;
	pkt->saddr = ip->saddr;
	pkt->daddr = ip->daddr;
	pkt->proto = ip->protocol;
	if (ip->protocol == IPPROTO_TCP) {
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

/*
 * Parses the frame; when the headers are not all in the linear area (a paged skb), pulls them in
 * once and retries.
 */
static __always_inline enum sl_parse_result sl_parse4(struct __sk_buff *skb, struct sl_pkt4 *pkt)
{
	enum sl_parse_result ret = sl_parse4_linear(skb, pkt);
	__u32 pull = SL_PARSE_PULL_LEN;

	if (ret != SL_PARSE_BAD)
		return ret;
	if (skb->data_end - skb->data >= skb->len)
		return SL_PARSE_BAD; /* everything was linear already: truly truncated */
	if (pull > skb->len)
		pull = skb->len;
	if (bpf_skb_pull_data(skb, pull) < 0)
		return SL_PARSE_BAD;
	return sl_parse4_linear(skb, pkt);
}

#endif /* SL_LIB_PARSE_H */
