/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Refusing an IPv6 flow (the IPv6 side of lib/reject.h): the packet is turned in place into a TCP
 * RST or an ICMPv6 destination unreachable / port unreachable (RFC 4443 3.1) from the frontend
 * address, and bounced back out of the interface it came in on, so the client's connect() or
 * connected UDP socket fails fast (ECONNREFUSED) instead of hanging.
 *
 * The reply is written whole, checksums computed in full over the IPv6 pseudo-header (RFC 8200
 * 8.1). The ICMPv6 error quotes the offending packet from its IPv6 header on, up to
 * SL_ICMP6_QUOTE_MAX bytes: enough for the receiver to find the socket (it needs the header and
 * the UDP ports), kept small because the message is built on the stack (RFC 4443 asks for as much
 * as fits in 1280 bytes; a short datagram is quoted whole).
 */
#ifndef SL_LIB_REJECT6_H
#define SL_LIB_REJECT6_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "parse6.h"
#include "csum.h"
#include "icmp.h"
#include "reject.h"

#define SL_IPPROTO_ICMPV6     58
#define SL_ICMP6_DEST_UNREACH 1
#define SL_ICMP6_PORT_UNREACH 4 /* code of SL_ICMP6_DEST_UNREACH */
#define SL_ICMP6_TOO_BIG      2 /* Packet Too Big */
/* The quoted IPv6 header and the first 64 bytes after it (a multiple of 4: see the checksum). */
#define SL_ICMP6_QUOTE_MAX (SL_IPV6_HLEN + 64)

/* The IPv6 pseudo-header that TCP, UDP and ICMPv6 checksums cover (RFC 8200 8.1). */
struct sl_pseudo_hdr6 {
	__be32 saddr[4];
	__be32 daddr[4];
	__be32 len; /* upper-layer length */
	__u8 zero[3];
	__u8 nexthdr;
};
_Static_assert(sizeof(struct sl_pseudo_hdr6) == 40, "sl_pseudo_hdr6 size");

/* The pseudo-header of a reply from the frontend (pkt's destination) back to the client. */
static __always_inline void sl_reject_pseudo6(const struct sl_pkt6 *pkt, struct sl_pseudo_hdr6 *ph,
					      __u8 nexthdr, __u32 len)
{
	__builtin_memcpy(ph->saddr, pkt->daddr, 16);
	__builtin_memcpy(ph->daddr, pkt->saddr, 16);
	ph->len = bpf_htonl(len);
	ph->nexthdr = nexthdr;
}

/*
 * Resizes the frame to ETH_HLEN + 40 + l4_len and writes the swapped Ethernet header and a fresh
 * IPv6 header from the frontend back to the client.
 */
static __always_inline int sl_reject_frame6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					    __u8 nexthdr, __u16 l4_len)
{
	struct ethhdr eth, out;
	struct ipv6hdr ip;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return -1;
	__builtin_memcpy(out.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(out.h_source, eth.h_dest, ETH_ALEN);
	out.h_proto = bpf_htons(ETH_P_IPV6);
	__builtin_memset(&ip, 0, sizeof(ip));
	ip.version = 6;
	ip.payload_len = bpf_htons(l4_len);
	ip.nexthdr = nexthdr;
	ip.hop_limit = SL_REJECT_TTL;
	__builtin_memcpy(&ip.saddr, pkt->daddr, 16);
	__builtin_memcpy(&ip.daddr, pkt->saddr, 16);
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(ip) + l4_len, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, 0, &out, sizeof(out), BPF_F_INVALIDATE_HASH) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof(ip), 0);
}

/* As sl_reject_tcp4: RST from the frontend (RFC 793's sequence rules); a RST is never answered. */
static __always_inline int sl_reject_tcp6(struct __sk_buff *skb, const struct sl_pkt6 *pkt)
{
	struct {
		struct sl_pseudo_hdr6 ph;
		struct tcphdr tcp;
	} rst = {};
	struct tcphdr in;
	__be16 payload_len;
	__u32 seg_len;

	if (pkt->tcp_flags & SL_TCP_FLAG_RST)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, pkt->l4_off, &in, sizeof(in)) < 0 ||
	    bpf_skb_load_bytes(skb, pkt->l3_off + offsetof(struct ipv6hdr, payload_len),
			       &payload_len, sizeof(payload_len)) < 0)
		return TC_ACT_SHOT;
	/* The payload: the extension headers (fixed header to l4_off), then the segment. */
	seg_len = bpf_ntohs(payload_len) - (pkt->l4_off - pkt->l3_off - SL_IPV6_HLEN) - in.doff * 4;
	if (in.syn)
		seg_len++;
	if (in.fin)
		seg_len++;

	rst.tcp.source = pkt->dport;
	rst.tcp.dest = pkt->sport;
	rst.tcp.doff = sizeof(struct tcphdr) / 4;
	rst.tcp.rst = 1;
	if (in.ack) {
		rst.tcp.seq = in.ack_seq;
	} else {
		rst.tcp.ack = 1;
		rst.tcp.ack_seq = bpf_htonl(bpf_ntohl(in.seq) + seg_len);
	}
	sl_reject_pseudo6(pkt, &rst.ph, IPPROTO_TCP, sizeof(struct tcphdr));
	rst.tcp.check = sl_csum_buf(&rst, sizeof(rst), 0);

	if (sl_reject_frame6(skb, pkt, IPPROTO_TCP, sizeof(rst.tcp)) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + SL_IPV6_HLEN, &rst.tcp, sizeof(rst.tcp), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/*
 * Answers the packet with an ICMPv6 error of type and code (rest: the 4 bytes after the
 * checksum, Packet Too Big's MTU), quoting as much of it as fits, from its destination back to
 * its source, redirected out of the interface it is on (redirect_flags: BPF_F_INGRESS to hand it
 * to this node's own input path instead).
 */
static __always_inline int sl_reject_icmp6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					   __u8 type, __u8 code, __be32 rest, __u64 redirect_flags)
{
	struct {
		struct sl_pseudo_hdr6 ph;
		struct sl_icmphdr icmp; /* ICMPv6 has the same 8-byte error header (RFC 4443 2.1) */
		__u8 quote[SL_ICMP6_QUOTE_MAX];
	} msg;
	__be16 payload_len;
	/* Kept opaque to the optimizer so the bounds below reach the verifier (see reject.h). */
	__u64 quote_len;
	__u32 msg_len, csum_len;

	__builtin_memset(&msg, 0, sizeof(msg));
	if (bpf_skb_load_bytes(skb, pkt->l3_off + offsetof(struct ipv6hdr, payload_len),
			       &payload_len, sizeof(payload_len)) < 0)
		return TC_ACT_SHOT;
	quote_len = SL_IPV6_HLEN + (__u32)bpf_ntohs(payload_len);
	asm volatile("" : "+r"(quote_len));
	if (quote_len > SL_ICMP6_QUOTE_MAX)
		quote_len = SL_ICMP6_QUOTE_MAX;
	asm volatile("" : "+r"(quote_len));
	if (quote_len < SL_IPV6_HLEN + 8 || quote_len > SL_ICMP6_QUOTE_MAX)
		return TC_ACT_SHOT; /* also gives the verifier its bounds */
	if (bpf_skb_load_bytes(skb, pkt->l3_off, msg.quote, quote_len) < 0)
		return TC_ACT_SHOT;
	msg.icmp.type = type;
	msg.icmp.code = code;
	msg.icmp.rest = rest;
	msg_len = sizeof(msg.icmp) + quote_len;
	sl_reject_pseudo6(pkt, &msg.ph, SL_IPPROTO_ICMPV6, msg_len);
	/* bpf_csum_diff sums whole words: the zeroed tail pads an odd quote. */
	csum_len = (sizeof(msg.ph) + msg_len + 3) & ~3U;
	if (csum_len > sizeof(msg))
		return TC_ACT_SHOT;
	msg.icmp.checksum = sl_csum_buf(&msg, csum_len, 0);

	if (sl_reject_frame6(skb, pkt, SL_IPPROTO_ICMPV6, msg_len) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + SL_IPV6_HLEN, &msg.icmp, msg_len, 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, redirect_flags);
}

/* Answers a UDP datagram with ICMPv6 destination unreachable / port unreachable. */
static __always_inline int sl_reject_udp6(struct __sk_buff *skb, const struct sl_pkt6 *pkt)
{
	return sl_reject_icmp6(skb, pkt, SL_ICMP6_DEST_UNREACH, SL_ICMP6_PORT_UNREACH, 0, 0);
}

/*
 * Answers a packet too large for the way on with ICMPv6 Packet Too Big carrying mtu (RFC 8201):
 * IPv6 routers never fragment, so every such packet is answered, whatever its flags.
 */
static __always_inline int sl_reject_too_big6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					      __u32 mtu, __u64 redirect_flags)
{
	return sl_reject_icmp6(skb, pkt, SL_ICMP6_TOO_BIG, 0, bpf_htonl(mtu), redirect_flags);
}

/* Refuses the packet's flow with the reply its protocol expects; returns the TC verdict. */
static __always_inline int sl_reject6(struct __sk_buff *skb, const struct sl_pkt6 *pkt)
{
	if (pkt->proto == IPPROTO_TCP)
		return sl_reject_tcp6(skb, pkt);
	return sl_reject_udp6(skb, pkt);
}

#endif /* SL_LIB_REJECT6_H */
