/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The IPv6 node-to-node tunnel of the Tunnel and DSR modes (lib/tunnel.h is the IPv4 one, and
 * says why UDP and GUE): an external IPv6 flow travels inside an outer IPv6 + UDP header between
 * the nodes' IPv6 addresses (sl_node_config6.snat_addr -> sl_backend_value6.node_addr), to the
 * same UDP port (--tunnel-port). GUE variant 1: the inner IPv6 packet right after the UDP
 * header, 48 bytes in all; a DSR flow's packets carry a GUE variant 0 header whose private data
 * is the IPv6 frontend (struct sl_gue_dsr6), 72 bytes in all. A receiver tells the two apart by
 * the first two bits after the UDP header (01: an IPv6 header, whose version nibble is 0110; 00:
 * a GUE header).
 *
 * The outer UDP checksum is 0, as in IPv4. IPv6 normally forbids it; RFC 6935 allows it for
 * tunnel protocols and RFC 6936 says when: the receiver is the tunnel endpoint, not a UDP
 * socket (here host.bpf.c's program at the interface, which no kernel checksum check precedes),
 * and the inner packet carries its own end-to-end checksums (TCP and UDP over IPv6 always do).
 * A valid checksum is not possible for every packet: a GSO packet (a pod's 64 KiB TCP send) is
 * cut into segments by the kernel after this program, each segment copying the outer header, and
 * bpf_skb_adjust_room cannot ask for SKB_GSO_UDP_TUNNEL_CSUM; a checksum computed here (over the
 * headers, the inner one's complement standing for the rest, as Local Checksum Offload does)
 * would be right for the unsegmented packet only, and wrong also for a local pod's packet whose
 * inner checksum is still CHECKSUM_PARTIAL (not yet complete). So the network between nodes must
 * carry IPv6 UDP with a zero checksum to the tunnel port (docs/external-traffic.md, "IPv6").
 *
 * Decapsulation accepts only sources listed in sl_tunnel_nodes6 (the Nodes' IPv6 InternalIPs);
 * anything else is dropped and counted (SL_DROP_TUNNEL_SOURCE).
 */
#ifndef SL_LIB_TUNNEL6_H
#define SL_LIB_TUNNEL6_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"
#include "maps.h"
#include "tunnel.h"
#include "parse6.h"

/* GUE byte 0: variant 0, C 0, Hlen 5 (20 bytes of private data). */
#define SL_GUE_V0_HLEN5 0x05
#define SL_IPPROTO_IPV6 41 /* GUE Proto: an IPv6 packet follows */

struct sl_tunnel6_hdr {
	struct ipv6hdr ip;
	struct udphdr udp;
};
_Static_assert(sizeof(struct sl_tunnel6_hdr) == SL_TUNNEL_V6_OVERHEAD, "IPv6 tunnel header size");

/* A DSR flow's GUE header in IPv6 (network order throughout). */
struct sl_gue_dsr6 {
	__u8 ver_c_hlen;	 /* SL_GUE_V0_HLEN5 */
	__u8 proto;		 /* SL_IPPROTO_IPV6 */
	__be16 flags;		 /* 0: the optional data is private data */
	__be32 frontend_addr[4]; /* private data: the frontend the client sent to ... */
	__be16 frontend_port;	 /* ... and its port */
	__u8 kind;		 /* SL_TUNNEL_GUE_DSR */
	__u8 reserved;		 /* 0 */
};
_Static_assert(sizeof(struct sl_gue_dsr6) == 24, "sl_gue_dsr6 size");

struct sl_tunnel6_dsr_hdr {
	struct sl_tunnel6_hdr outer;
	struct sl_gue_dsr6 gue;
};
_Static_assert(sizeof(struct sl_tunnel6_dsr_hdr) == SL_TUNNEL_V6_DSR_OVERHEAD,
	       "IPv6 DSR header size");

/* What sl_tunnel_decap6 read from the outer headers. */
struct sl_tunnel6_in {
	__be32 peer[4];		 /* the sending node */
	__be32 frontend_addr[4]; /* DSR: the frontend to answer from */
	__be16 frontend_port;
	__u8 dsr; /* the GUE DSR header was there */
	__u8 pad;
};

/* DSR mode: whether a new IPv6 flow of client goes DSR (not in sl_dsr_optout6) or Tunnel. */
static __always_inline bool sl_dsr_for_client6(const __be32 *client)
{
	struct sl_dsr_optout_key6 k = {.prefixlen = 128};

	if (sl_external_mode != SL_EXT_MODE_DSR)
		return false;
	__builtin_memcpy(k.addr, client, 16);
	return !bpf_map_lookup_elem(&sl_dsr_optout6, &k);
}

/* The largest TCP MSS whose IPv6 segments fit the path once wrapped (no options). */
static __always_inline __u16 sl_tunnel_mss6(__u32 overhead)
{
	return sl_tunnel_mtu - overhead - SL_IPV6_HLEN - 20;
}

/* sl_tunnel_sport over an IPv6 tuple: the addresses' words folded first. */
static __always_inline __be16 sl_tunnel_sport6(const __be32 *saddr, const __be32 *daddr,
					       __be16 sport, __be16 dport)
{
	__u32 h = saddr[0] ^ saddr[1] ^ saddr[2] ^ saddr[3] ^ daddr[0] ^ daddr[1] ^ daddr[2] ^
		  daddr[3] ^ (((__u32)sport << 16) | dport);

	h ^= h >> 16;
	return bpf_htons(49152 + (h & 0x3fff));
}

/*
 * True for a UDP GSO IPv6 packet (no extension headers): *seg_len gets the IPv6 length of one
 * of its datagrams (see sl_tunnel_udp_gso).
 */
static __always_inline bool sl_tunnel_udp_gso6(struct __sk_buff *skb, __u32 *seg_len)
{
	__u8 nexthdr;

	if (!skb->gso_segs)
		return false;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, nexthdr), &nexthdr,
			       sizeof(nexthdr)) < 0 ||
	    nexthdr != IPPROTO_UDP)
		return false;
	*seg_len = SL_IPV6_HLEN + sizeof(struct udphdr) + skb->gso_size;
	return true;
}

/* As sl_tunnel_too_big, for an IPv6 packet. */
static __always_inline bool sl_tunnel_too_big6(struct __sk_buff *skb, __u32 overhead)
{
	__u32 seg_len;

	if (sl_tunnel_udp_gso6(skb, &seg_len))
		return seg_len + overhead > sl_tunnel_mtu;
	return !skb->gso_segs && skb->len - ETH_HLEN + overhead > sl_tunnel_mtu;
}

/*
 * Wraps the IPv6 packet of the frame in an outer IPv6 (saddr -> daddr) + UDP header and, dsr
 * set, the GUE header carrying frontend_addr:frontend_port. Flow label 0, hop limit
 * SL_TUNNEL_TTL, UDP checksum 0 (see above). Returns 0 or a negative errno.
 */
static __always_inline int sl_tunnel_encap6(struct __sk_buff *skb, const __be32 *saddr,
					    const __be32 *daddr, __be16 udp_sport, bool dsr,
					    const __be32 *frontend_addr, __be16 frontend_port)
{
	__u32 inner_len = skb->len - ETH_HLEN;
	__u32 overhead = dsr ? SL_TUNNEL_V6_DSR_OVERHEAD : SL_TUNNEL_V6_OVERHEAD;
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP;
	struct sl_tunnel6_dsr_hdr h = {};
	__u32 seg_len;

	if (sl_tunnel_udp_gso6(skb, &seg_len))
		flags |= BPF_F_ADJ_ROOM_FIXED_GSO;
	h.outer.ip.version = 6;
	h.outer.ip.payload_len = bpf_htons(inner_len + overhead - SL_IPV6_HLEN);
	h.outer.ip.nexthdr = IPPROTO_UDP;
	h.outer.ip.hop_limit = SL_TUNNEL_TTL;
	__builtin_memcpy(&h.outer.ip.saddr, saddr, 16);
	__builtin_memcpy(&h.outer.ip.daddr, daddr, 16);
	h.outer.udp.source = udp_sport;
	h.outer.udp.dest = bpf_htons((__u16)sl_tunnel_port);
	h.outer.udp.len = bpf_htons(inner_len + overhead - SL_IPV6_HLEN);
	h.outer.udp.check = 0;
	if (!dsr) {
		if (bpf_skb_adjust_room(skb, SL_TUNNEL_V6_OVERHEAD, BPF_ADJ_ROOM_MAC, flags) < 0)
			return -1;
		return bpf_skb_store_bytes(skb, ETH_HLEN, &h.outer, SL_TUNNEL_V6_OVERHEAD, 0);
	}
	h.gue.ver_c_hlen = SL_GUE_V0_HLEN5;
	h.gue.proto = SL_IPPROTO_IPV6;
	__builtin_memcpy(h.gue.frontend_addr, frontend_addr, 16);
	h.gue.frontend_port = frontend_port;
	h.gue.kind = SL_TUNNEL_GUE_DSR;
	if (bpf_skb_adjust_room(skb, SL_TUNNEL_V6_DSR_OVERHEAD, BPF_ADJ_ROOM_MAC, flags) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN, &h, SL_TUNNEL_V6_DSR_OVERHEAD, 0);
}

/*
 * Whether the IPv6 frame looks like tunnel traffic: UDP right after the fixed header, to
 * sl_tunnel_port. The entry program's cheap test (fixed offsets) that sends it to the
 * decapsulating program; sl_tunnel_decap6 checks the rest.
 */
static __always_inline bool sl_tunnel_is_outer6(struct __sk_buff *skb)
{
	__u8 nexthdr;
	__be16 dport;

	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, nexthdr), &nexthdr,
			       sizeof(nexthdr)) < 0 ||
	    nexthdr != IPPROTO_UDP)
		return false;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + SL_IPV6_HLEN + offsetof(struct udphdr, dest), &dport,
			       sizeof(dport)) < 0)
		return false;
	return dport == bpf_htons((__u16)sl_tunnel_port);
}

/*
 * Unwraps IPv6 tunnel traffic (as sl_tunnel_decap4): outer IPv6 (no extension headers) + UDP to
 * sl_tunnel_port from a node of sl_tunnel_nodes6, then an IPv6 packet (Tunnel) or a DSR GUE
 * header and an IPv6 packet (DSR). In every mode (a rolling switch of modes).
 */
static __always_inline enum sl_tunnel_result sl_tunnel_decap6(struct __sk_buff *skb,
							      struct sl_tunnel6_in *in)
{
	struct sl_tunnel_node_key6 node;
	__u32 overhead = SL_TUNNEL_V6_OVERHEAD;
	struct sl_tunnel6_hdr h;
	struct sl_gue_dsr6 g;
	__u8 first, inner_v;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &h, sizeof(h)) < 0)
		return SL_TUNNEL_NONE;
	if (h.ip.version != 6 || h.ip.nexthdr != IPPROTO_UDP ||
	    h.udp.dest != bpf_htons((__u16)sl_tunnel_port))
		return SL_TUNNEL_NONE;
	__builtin_memcpy(node.addr, &h.ip.saddr, 16);
	if (!bpf_map_lookup_elem(&sl_tunnel_nodes6, &node)) {
		sl_count_drop(SL_DROP_TUNNEL_SOURCE);
		return SL_TUNNEL_DROP;
	}
	if (bpf_skb_load_bytes(skb, ETH_HLEN + SL_TUNNEL_V6_OVERHEAD, &first, 1) < 0)
		goto malformed;
	if ((first >> 6) == 0) { /* GUE variant 0: a DSR flow's header */
		if (bpf_skb_load_bytes(skb, ETH_HLEN + SL_TUNNEL_V6_OVERHEAD, &g, sizeof(g)) < 0)
			goto malformed;
		if (g.ver_c_hlen != SL_GUE_V0_HLEN5 || g.proto != SL_IPPROTO_IPV6 || g.flags ||
		    g.kind != SL_TUNNEL_GUE_DSR ||
		    !(g.frontend_addr[0] | g.frontend_addr[1] | g.frontend_addr[2] |
		      g.frontend_addr[3]))
			goto malformed;
		__builtin_memcpy(in->frontend_addr, g.frontend_addr, 16);
		in->frontend_port = g.frontend_port;
		in->dsr = 1;
		overhead = SL_TUNNEL_V6_DSR_OVERHEAD;
	}
	if (bpf_skb_load_bytes(skb, ETH_HLEN + overhead, &inner_v, 1) < 0 || (inner_v >> 4) != 6)
		goto malformed;
	if (bpf_skb_adjust_room(skb, -(__s32)overhead, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO) <
	    0)
		goto malformed;
	__builtin_memcpy(in->peer, node.addr, 16);
	return SL_TUNNEL_INNER;
malformed:
	sl_count_drop(SL_DROP_MALFORMED);
	return SL_TUNNEL_DROP;
}

#endif /* SL_LIB_TUNNEL6_H */
