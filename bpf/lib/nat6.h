/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address/port rewrites of IPv6 TCP/UDP packets. IPv6 has no header checksum: only the L4
 * checksum changes, through its pseudo-header (each 32-bit word of a rewritten address, then
 * the port). UDP's checksum is mandatory in IPv6; BPF_F_MARK_MANGLED_0 still keeps a computed 0
 * from being written as "none" (it becomes 0xffff). As lib/nat.h, callers work from offsets.
 */
#ifndef SL_LIB_NAT6_H
#define SL_LIB_NAT6_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include "parse6.h"

static __always_inline __u32 sl_l4_csum_off6(const struct sl_pkt6 *pkt)
{
	if (pkt->proto == IPPROTO_TCP)
		return pkt->l4_off + offsetof(struct tcphdr, check);
	return pkt->l4_off + offsetof(struct udphdr, check);
}

static __always_inline __u64 sl_l4_csum_flags6(const struct sl_pkt6 *pkt)
{
	return pkt->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Rewrites the 16-byte address at field_off of the IPv6 header from old to new. */
static __always_inline int sl_nat_addr6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					__u32 field_off, const __be32 *old, const __be32 *new)
{
	__u32 csum_off = sl_l4_csum_off6(pkt);
	__u64 flags = BPF_F_PSEUDO_HDR | sl_l4_csum_flags6(pkt) | sizeof(__be32);
	int ret, i;

	ret = bpf_skb_store_bytes(skb, pkt->l3_off + field_off, new, 16, 0);
	if (ret < 0)
		return ret;
#pragma unroll
	for (i = 0; i < 4; i++) {
		if (old[i] == new[i])
			continue;
		ret = bpf_l4_csum_replace(skb, csum_off, old[i], new[i], flags);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static __always_inline int sl_nat_port6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
					__u32 field_off, __be16 old, __be16 new)
{
	int ret;

	if (old == new)
		return 0;
	ret = bpf_skb_store_bytes(skb, pkt->l4_off + field_off, &new, sizeof(new), 0);
	if (ret < 0)
		return ret;
	return bpf_l4_csum_replace(skb, sl_l4_csum_off6(pkt), old, new,
				   sl_l4_csum_flags6(pkt) | sizeof(new));
}

/* Rewrites the destination to addr:port (DNAT). Returns 0 or a negative errno. */
static __always_inline int sl_nat_dst6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
				       const __be32 *addr, __be16 port)
{
	int ret = sl_nat_addr6(skb, pkt, offsetof(struct ipv6hdr, daddr), pkt->daddr, addr);

	if (ret < 0)
		return ret;
	return sl_nat_port6(skb, pkt, offsetof(struct tcphdr, dest), pkt->dport, port);
}

/* Rewrites the source to addr:port (reverse NAT). Returns 0 or a negative errno. */
static __always_inline int sl_nat_src6(struct __sk_buff *skb, const struct sl_pkt6 *pkt,
				       const __be32 *addr, __be16 port)
{
	int ret = sl_nat_addr6(skb, pkt, offsetof(struct ipv6hdr, saddr), pkt->saddr, addr);

	if (ret < 0)
		return ret;
	return sl_nat_port6(skb, pkt, offsetof(struct tcphdr, source), pkt->sport, port);
}

#endif /* SL_LIB_NAT6_H */
