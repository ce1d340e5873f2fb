/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Checksums: incremental updates for rewritten fields (NAT) and full computation for packets
 * built from scratch (reject replies).
 *
 * The incremental helpers work whatever the skb's checksum state: with CHECKSUM_PARTIAL (a
 * pod's offloaded transmit) the kernel updates only the pseudo-header part of the L4 field,
 * otherwise the full checksum. UDP's "no checksum" (0) is left alone thanks to
 * BPF_F_MARK_MANGLED_0, which also turns a computed 0 into 0xffff.
 */
#ifndef SL_LIB_CSUM_H
#define SL_LIB_CSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include "parse.h"

/* Offset of the L4 checksum field from the start of the frame. */
static __always_inline __u32 sl_l4_csum_off(const struct sl_pkt4 *pkt)
{
	if (pkt->proto == IPPROTO_TCP)
		return pkt->l4_off + offsetof(struct tcphdr, check);
	return pkt->l4_off + offsetof(struct udphdr, check);
}

/* L4 flags for bpf_l4_csum_replace: UDP keeps a 0 ("none") checksum untouched. */
static __always_inline __u64 sl_l4_csum_flags(const struct sl_pkt4 *pkt)
{
	return pkt->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/*
 * An IPv4 address at ip_field_off changed from old to new: fixes the IP header checksum and the
 * L4 checksum (the address is part of the pseudo-header). Returns 0 or a negative errno.
 */
static __always_inline int sl_csum_addr4(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					 __be32 old, __be32 new)
{
	int ret;

	ret = bpf_l3_csum_replace(skb, pkt->l3_off + offsetof(struct iphdr, check), old, new,
				  sizeof(new));
	if (ret < 0)
		return ret;
	return bpf_l4_csum_replace(skb, sl_l4_csum_off(pkt), old, new,
				   BPF_F_PSEUDO_HDR | sl_l4_csum_flags(pkt) | sizeof(new));
}

/* An L4 port changed from old to new: fixes the L4 checksum. */
static __always_inline int sl_csum_port(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					__be16 old, __be16 new)
{
	return bpf_l4_csum_replace(skb, sl_l4_csum_off(pkt), old, new,
				   sl_l4_csum_flags(pkt) | sizeof(new));
}

/* Folds a 32-bit one's complement sum into the 16-bit checksum to store (complemented). */
static __always_inline __u16 sl_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Checksum over a buffer on the stack; len must be a multiple of 4 (bpf_csum_diff). */
static __always_inline __u16 sl_csum_buf(void *buf, __u32 len, __u32 seed)
{
	__s64 sum = bpf_csum_diff(NULL, 0, buf, len, seed);

	return sl_csum_fold((__u32)sum);
}

#endif /* SL_LIB_CSUM_H */
