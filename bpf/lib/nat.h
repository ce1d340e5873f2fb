/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address/port rewrites of IPv4 TCP/UDP packets with checksum fix-ups. Every rewrite stores the
 * new bytes and then adjusts the checksums by the difference; it invalidates packet pointers,
 * so callers work from struct sl_pkt4 (offsets), never from pointers kept across a rewrite.
 */
#ifndef SL_LIB_NAT_H
#define SL_LIB_NAT_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include "parse.h"
#include "csum.h"
#include "conntrack.h"

/* Source port and destination port sit at the same offsets in TCP and UDP. */
_Static_assert(offsetof(struct tcphdr, source) == offsetof(struct udphdr, source), "sport");
_Static_assert(offsetof(struct tcphdr, dest) == offsetof(struct udphdr, dest), "dport");

static __always_inline int sl_nat_addr4(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					__u32 field_off, __be32 old, __be32 new)
{
	int ret;

	if (old == new)
		return 0;
	ret = bpf_skb_store_bytes(skb, pkt->l3_off + field_off, &new, sizeof(new), 0);
	if (ret < 0)
		return ret;
	return sl_csum_addr4(skb, pkt, old, new);
}

static __always_inline int sl_nat_port(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
				       __u32 field_off, __be16 old, __be16 new)
{
	int ret;

	if (old == new)
		return 0;
	ret = bpf_skb_store_bytes(skb, pkt->l4_off + field_off, &new, sizeof(new), 0);
	if (ret < 0)
		return ret;
	return sl_csum_port(skb, pkt, old, new);
}

/* Rewrites the destination to addr:port (DNAT). Returns 0 or a negative errno. */
static __always_inline int sl_nat_dst4(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
				       __be32 addr, __be16 port)
{
	int ret = sl_nat_addr4(skb, pkt, offsetof(struct iphdr, daddr), pkt->daddr, addr);

	if (ret < 0)
		return ret;
	return sl_nat_port(skb, pkt, offsetof(struct tcphdr, dest), pkt->dport, port);
}

/* Rewrites the source to addr:port (SNAT / reverse NAT). Returns 0 or a negative errno. */
static __always_inline int sl_nat_src4(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
				       __be32 addr, __be16 port)
{
	int ret = sl_nat_addr4(skb, pkt, offsetof(struct iphdr, saddr), pkt->saddr, addr);

	if (ret < 0)
		return ret;
	return sl_nat_port(skb, pkt, offsetof(struct tcphdr, source), pkt->sport, port);
}

/*
 * A reply of a tracked flow (REVERSE entry, key its tuple): the entry is refreshed and the
 * source becomes the frontend the client knows. Returns 0 or a negative errno.
 */
static __always_inline int sl_nat_reply4(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					 const struct sl_ct_key4 *key, struct sl_ct_value4 *ct,
					 __u64 now)
{
	__be32 frontend_addr = ct->nat_addr;
	__be16 frontend_port = ct->nat_port;

	sl_ct_update4(key, ct, pkt->tcp_flags, now);
	return sl_nat_src4(skb, pkt, frontend_addr, frontend_port);
}

#endif /* SL_LIB_NAT_H */
