/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Sending a translated packet on from the host interface it arrived at, as a router would,
 * without the kernel's input path. Needed whenever the rewritten packet's source is one of this
 * node's own addresses (an SNATed request, a reverse-translated reply of one): the kernel's
 * input path drops such a packet as a martian. The route and the next hop's MAC come from
 * bpf_fib_lookup (4.18); a next hop without a neighbour entry yet goes through
 * bpf_redirect_neigh (5.10), which resolves it.
 */
#ifndef SL_LIB_FIB_H
#define SL_LIB_FIB_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "parse.h"
#include "lb.h"

#define SL_AF_INET 2 /* <sys/socket.h> is a libc header */

/* Decrements the TTL of the IPv4 header at l3_off (checksum fixed); -1 when it ran out. */
static __always_inline int sl_ttl_dec4(struct __sk_buff *skb, __u32 l3_off)
{
	__u32 off = l3_off + offsetof(struct iphdr, ttl);
	__u8 ttl;
	__be16 old, new;

	if (bpf_skb_load_bytes(skb, off, &old, sizeof(old)) < 0)
		return -1;
	ttl = ((__u8 *)&old)[0];
	if (ttl <= 1)
		return -1;
	new = old;
	((__u8 *)&new)[0] = ttl - 1;
	if (bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0) < 0)
		return -1;
	return bpf_l3_csum_replace(skb, l3_off + offsetof(struct iphdr, check), old, new,
				   sizeof(new));
}

/*
 * Sends the IPv4 packet saddr -> daddr (its TTL already handled) out of the node: Ethernet
 * addresses of the chosen interface and next hop written, redirected to that interface's egress.
 * Returns the TC verdict; a packet with no route is dropped and counted.
 */
static __always_inline int sl_fib_send4(struct __sk_buff *skb, __be32 saddr, __be32 daddr)
{
	struct bpf_fib_lookup p = {};
	long ret;

	p.family = SL_AF_INET;
	p.ifindex = skb->ifindex;
	p.ipv4_src = saddr;
	p.ipv4_dst = daddr;
	/* An input lookup from the arrival interface: policy rules apply, forwarding must be on. */
	ret = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (ret == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(p.ifindex, NULL, 0, 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS) {
		sl_count_drop(SL_DROP_NO_ROUTE);
		return TC_ACT_SHOT;
	}
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), p.dmac, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), p.smac, ETH_ALEN, 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(p.ifindex, 0);
}

/*
 * Routes the (already translated) IPv4 packet saddr -> daddr out of the node, as a router: TTL
 * decremented (an expired one is dropped and counted), then sl_fib_send4.
 */
static __always_inline int sl_fib_redirect4(struct __sk_buff *skb, __u32 l3_off, __be32 saddr,
					    __be32 daddr)
{
	if (sl_ttl_dec4(skb, l3_off) < 0) {
		sl_count_drop(SL_DROP_TTL);
		return TC_ACT_SHOT;
	}
	return sl_fib_send4(skb, saddr, daddr);
}

#define SL_AF_INET6 10

/* Decrements the hop limit of the IPv6 header at l3_off (no header checksum); -1 when it ran out.
 */
static __always_inline int sl_hop_dec6(struct __sk_buff *skb, __u32 l3_off)
{
	__u32 off = l3_off + 7; /* struct ipv6hdr, hop_limit */
	__u8 hops;

	if (bpf_skb_load_bytes(skb, off, &hops, sizeof(hops)) < 0 || hops <= 1)
		return -1;
	hops -= 1;
	return bpf_skb_store_bytes(skb, off, &hops, sizeof(hops), 0);
}

/* As sl_fib_send4, for the IPv6 packet saddr -> daddr (16 bytes each). */
static __always_inline int sl_fib_send6(struct __sk_buff *skb, const __be32 *saddr,
					const __be32 *daddr)
{
	struct bpf_fib_lookup p = {};
	long ret;

	p.family = SL_AF_INET6;
	p.ifindex = skb->ifindex;
	__builtin_memcpy(p.ipv6_src, saddr, 16);
	__builtin_memcpy(p.ipv6_dst, daddr, 16);
	ret = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (ret == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(p.ifindex, NULL, 0, 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS) {
		sl_count_drop(SL_DROP_NO_ROUTE);
		return TC_ACT_SHOT;
	}
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), p.dmac, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), p.smac, ETH_ALEN, 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(p.ifindex, 0);
}

/* As sl_fib_redirect4: hop limit decremented (an expired one dropped, ttl), then sl_fib_send6. */
static __always_inline int sl_fib_redirect6(struct __sk_buff *skb, __u32 l3_off,
					    const __be32 *saddr, const __be32 *daddr)
{
	if (sl_hop_dec6(skb, l3_off) < 0) {
		sl_count_drop(SL_DROP_TTL);
		return TC_ACT_SHOT;
	}
	return sl_fib_send6(skb, saddr, daddr);
}

#endif /* SL_LIB_FIB_H */
