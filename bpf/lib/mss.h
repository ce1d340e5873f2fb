/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP MSS clamping for tunnelled flows (docs/external-traffic.md, "MTU"). The tunnel adds
 * SL_TUNNEL_OVERHEAD bytes; a full-size segment of either end would no longer fit the path and
 * be dropped where nobody tells the sender. So the MSS option of each SYN crossing the tunnel
 * (the client's SYN at the ingress node, the backend's SYN-ACK at the backend's node) is lowered
 * to what fits: both ends then send segments that fit once encapsulated, without depending on
 * ICMP reaching them.
 */
#ifndef SL_LIB_MSS_H
#define SL_LIB_MSS_H

#include <linux/bpf.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <stddef.h>
#include "parse.h"
#include "csum.h"

#define SL_TCPOPT_EOL	0
#define SL_TCPOPT_NOP	1
#define SL_TCPOPT_MSS	2
#define SL_TCPOLEN_MSS	4
#define SL_TCP_OPTS_MAX 40 /* bytes of options a TCP header can carry */

/*
 * Lowers the MSS option of the TCP SYN whose header is at l4_off (its checksum at csum_off) to
 * mss_max when it is larger, fixing the checksum. SYNs without the option are left alone.
 * Returns 0 or a negative errno. The caller checks that the packet is a SYN (IPv6:
 * lib/host6_tunnel.h, which clamps from a step of its own).
 */
static __always_inline int sl_tcp_clamp_mss_at(struct __sk_buff *skb, __u32 l4_off, __u32 csum_off,
					       __u16 mss_max)
{
	__u32 opts = l4_off + sizeof(struct tcphdr);
	__u32 end, off, i;
	__u8 doff, kind, len;
	__be16 old, new;

	if (bpf_skb_load_bytes(skb, l4_off + 12, &doff, 1) < 0)
		return -1;
	end = opts + (doff >> 4) * 4 - sizeof(struct tcphdr);
	off = opts;
#pragma clang loop unroll(disable)
	for (i = 0; i < SL_TCP_OPTS_MAX; i++) {
		if (off + 2 > end)
			return 0;
		if (bpf_skb_load_bytes(skb, off, &kind, 1) < 0)
			return -1;
		if (kind == SL_TCPOPT_EOL)
			return 0;
		if (kind == SL_TCPOPT_NOP) {
			off++;
			continue;
		}
		if (bpf_skb_load_bytes(skb, off + 1, &len, 1) < 0)
			return -1;
		if (len < 2)
			return 0; /* malformed: leave it to the ends */
		if (kind == SL_TCPOPT_MSS && len == SL_TCPOLEN_MSS) {
			if (off + SL_TCPOLEN_MSS > end ||
			    bpf_skb_load_bytes(skb, off + 2, &old, sizeof(old)) < 0)
				return -1;
			if (bpf_ntohs(old) <= mss_max)
				return 0;
			new = bpf_htons(mss_max);
			if (bpf_skb_store_bytes(skb, off + 2, &new, sizeof(new), 0) < 0)
				return -1;
			return bpf_l4_csum_replace(skb, csum_off, old, new, sizeof(new));
		}
		off += len;
	}
	return 0;
}

/* The MSS clamp of an IPv4 TCP SYN (pkt); other packets are left alone. */
static __always_inline int sl_tcp_clamp_mss4(struct __sk_buff *skb, const struct sl_pkt4 *pkt,
					     __u16 mss_max)
{
	if (pkt->proto != IPPROTO_TCP || !(pkt->tcp_flags & SL_TCP_FLAG_SYN) || !mss_max)
		return 0;
	return sl_tcp_clamp_mss_at(skb, pkt->l4_off, sl_l4_csum_off(pkt), mss_max);
}

#endif /* SL_LIB_MSS_H */
