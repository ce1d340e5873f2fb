/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Refusing a flow to a service without backends: the packet is turned in place into a TCP RST
 * or an ICMP port unreachable from the frontend address and bounced back out of the interface it
 * came in on (bpf_redirect to skb->ifindex: host veth ingress -> host veth egress -> the pod), so
 * the client's connect() fails fast instead of hanging. The same ICMP answers a packet too large
 * for the tunnel (host.bpf.c): at a host interface's ingress (a client's request) bounced out
 * the same way, at its egress (a pod's reply) handed to the interface's ingress for the kernel
 * to route back to the pod.
 *
 * The reply is written whole (headers from scratch, checksums computed in full), so the result
 * does not depend on the original packet's IP options or payload. A pod's offloaded transmit may
 * leave the skb CHECKSUM_PARTIAL; the receiving stack then trusts the checksums, which are
 * correct anyway.
 */
#ifndef SL_LIB_REJECT_H
#define SL_LIB_REJECT_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "parse.h"
#include "csum.h"
#include "icmp.h"

#define SL_REJECT_TTL	 64
#define SL_IP_DF	 0x4000 /* don't fragment (host order, in frag_off) */
#define SL_IPTOS_CONTROL 0xc0	/* precedence "internetwork control", as Linux sends ICMP errors */
/* ICMP errors quote the offending IP header (options included) and 8 bytes of its payload. */
#define SL_ICMP_QUOTE_MAX (60 + 8)

/* The IPv4 pseudo-header that TCP and UDP checksums cover. */
struct sl_pseudo_hdr4 {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

/* Writes a fresh 20-byte IPv4 header from the frontend (pkt's destination) back to the client. */
static __always_inline void sl_reject_ip4(const struct sl_pkt4 *pkt, struct iphdr *ip, __u8 proto,
					  __u8 tos, __u16 tot_len)
{
	__builtin_memset(ip, 0, sizeof(*ip));
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = tos;
	ip->tot_len = bpf_htons(tot_len);
	ip->frag_off = bpf_htons(SL_IP_DF);
	ip->ttl = SL_REJECT_TTL;
	ip->protocol = proto;
	ip->saddr = pkt->daddr;
	ip->daddr = pkt->saddr;
	ip->check = sl_csum_buf(ip, sizeof(*ip), 0);
}

/* Resizes the frame to len and writes the swapped Ethernet header and the new IPv4 header. */
static __always_inline int sl_reject_frame(struct __sk_buff *skb, __u32 len, struct iphdr *ip)
{
	struct ethhdr eth, out;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return -1;
	__builtin_memcpy(out.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(out.h_source, eth.h_dest, ETH_ALEN);
	out.h_proto = bpf_htons(ETH_P_IP);
	if (bpf_skb_change_tail(skb, len, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, 0, &out, sizeof(out), BPF_F_INVALIDATE_HASH) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN, ip, sizeof(*ip), 0);
}

/*
 * Answers a TCP segment with a RST as RFC 793 says: if the segment had ACK, the RST takes its
 * sequence from that ack; otherwise it acknowledges everything the segment occupied. A RST is
 * never answered. Returns the TC verdict.
 */
static __always_inline int sl_reject_tcp4(struct __sk_buff *skb, const struct sl_pkt4 *pkt)
{
	struct {
		struct sl_pseudo_hdr4 ph;
		struct tcphdr tcp;
	} rst = {};
	struct tcphdr in;
	struct iphdr ip;
	__u16 ip_len;
	__u32 seg_len;

	if (pkt->tcp_flags & SL_TCP_FLAG_RST)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, pkt->l4_off, &in, sizeof(in)) < 0 ||
	    bpf_skb_load_bytes(skb, pkt->l3_off + offsetof(struct iphdr, tot_len), &ip_len,
			       sizeof(ip_len)) < 0)
		return TC_ACT_SHOT;
	seg_len = bpf_ntohs(ip_len) - pkt->ip_hlen - in.doff * 4;
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
	rst.ph.saddr = pkt->daddr;
	rst.ph.daddr = pkt->saddr;
	rst.ph.proto = IPPROTO_TCP;
	rst.ph.len = bpf_htons(sizeof(struct tcphdr));
	rst.tcp.check = sl_csum_buf(&rst, sizeof(rst), 0);

	sl_reject_ip4(pkt, &ip, IPPROTO_TCP, 0, sizeof(ip) + sizeof(rst.tcp));
	if (sl_reject_frame(skb, ETH_HLEN + sizeof(ip) + sizeof(rst.tcp), &ip) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(ip), &rst.tcp, sizeof(rst.tcp), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/*
 * Answers the packet with an ICMP error from its destination (the frontend), quoting its IP header
 * and 8 bytes of its payload; rest is the ICMP header's second word (the next-hop MTU of a
 * "fragmentation needed", zero otherwise). redirect_flags: 0 sends it back out of the interface
 * the packet arrived at (an ingress hook); BPF_F_INGRESS hands a packet caught leaving (an
 * egress hook) back to this interface's ingress, where the kernel routes it to the sender like a
 * packet from the network (the Ethernet addresses swapped make it addressed to this interface).
 */
static __always_inline int sl_icmp_reply4(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					  __u8 type, __u8 code, __be32 rest, __u64 redirect_flags)
{
	struct {
		struct sl_icmphdr icmp;
		__u8 quote[SL_ICMP_QUOTE_MAX];
	} msg;
	/* clang 19 (Debian 13, the image's build stage) knows ip_hlen <= 60 and drops the upper
	 * bound below, or checks a zero-extended __u32 copy; either way the verifier, which sees up
	 * to 252, rejects the load ("invalid write to stack ... size=260"). A 64-bit length hidden
	 * from the optimizer by an empty asm keeps the compare, on the register passed. */
	__u64 quote_len = pkt->ip_hlen + 8;
	__u32 msg_len;
	struct iphdr ip;

	__builtin_memset(&msg, 0, sizeof(msg));
	asm volatile("" : "+r"(quote_len));
	if (quote_len < sizeof(struct iphdr) + 8 || quote_len > SL_ICMP_QUOTE_MAX)
		return TC_ACT_SHOT; /* also gives the verifier its bounds */
	if (bpf_skb_load_bytes(skb, pkt->l3_off, msg.quote, quote_len) < 0)
		return TC_ACT_SHOT;
	msg.icmp.type = type;
	msg.icmp.code = code;
	msg.icmp.rest = rest;
	msg_len = sizeof(msg.icmp) + quote_len; /* a multiple of 4: ihl is in words */
	msg.icmp.checksum = sl_csum_buf(&msg, msg_len, 0);

	sl_reject_ip4(pkt, &ip, IPPROTO_ICMP, SL_IPTOS_CONTROL, sizeof(ip) + msg_len);
	if (sl_reject_frame(skb, ETH_HLEN + sizeof(ip) + msg_len, &ip) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(ip), &msg, msg_len, 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, redirect_flags);
}

/* Answers a UDP datagram with ICMP destination unreachable / port unreachable. */
static __always_inline int sl_reject_udp4(struct __sk_buff *skb, const struct sl_pkt4 *pkt)
{
	return sl_icmp_reply4(skb, pkt, SL_ICMP_DEST_UNREACH, SL_ICMP_PORT_UNREACH, 0, 0);
}

/*
 * Answers a packet too large for the way on with ICMP "fragmentation needed" carrying mtu, the
 * largest packet that fits (RFC 1191): the sender's path MTU discovery adapts. Only a packet with
 * DF set is answered (one without would be fragmented by a router; Sluice cannot); either way it
 * is not sent on. redirect_flags as for sl_icmp_reply4. Returns the TC verdict.
 */
static __always_inline int sl_reject_too_big4(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					      __u32 mtu, __u64 redirect_flags)
{
	__be16 frag_off;

	if (bpf_skb_load_bytes(skb, pkt->l3_off + offsetof(struct iphdr, frag_off), &frag_off,
			       sizeof(frag_off)) < 0 ||
	    !(frag_off & bpf_htons(SL_IP_DF)))
		return TC_ACT_SHOT;
	return sl_icmp_reply4(skb, pkt, SL_ICMP_DEST_UNREACH, SL_ICMP_FRAG_NEEDED,
			      bpf_htonl(mtu & 0xffff), redirect_flags);
}

/* Refuses the packet's flow with the reply its protocol expects; returns the TC verdict. */
static __always_inline int sl_reject4(struct __sk_buff *skb, const struct sl_pkt4 *pkt)
{
	if (pkt->proto == IPPROTO_TCP)
		return sl_reject_tcp4(skb, pkt);
	return sl_reject_udp4(skb, pkt);
}

#endif /* SL_LIB_REJECT_H */
