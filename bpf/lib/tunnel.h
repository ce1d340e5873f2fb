/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node-to-node tunnel of the Tunnel mode (docs/external-traffic.md): the client's packet, as
 * the ingress node translated it (destination the backend, source the client), travels inside an
 * outer IPv4 + UDP header to the backend's node, and the backend's replies travel back the same
 * way. The encapsulation is GUE variant 1 (FOU): the inner IPv4 header right after the UDP
 * header, 28 bytes in all. UDP, because cloud networks carry it where they do not carry IP-in-IP
 * (Azure drops protocol 4) and a security-group rule for one UDP port is the usual ask (AWS).
 *
 * DSR mode: the backend's node answers the client directly, with the frontend the client sent to
 * as the source. It cannot tell that frontend from the packet (the ingress node rewrote the
 * destination to the backend, and a NodePort, an ExternalIP and a LoadBalancer IP of one
 * service all lead to the same backend), so the ingress node carries it in the encapsulation: a
 * GUE variant 0 header (version 0, C 0, Hlen 2, Proto 4 = IPv4, no flags) whose 8 bytes of
 * optional data are GUE "private data", defined here (struct sl_gue_dsr4). Every packet of a
 * DSR flow carries it, not only the first: the backend's node then needs no state it could lose
 * (its conntrack entry evicted, the flow moved to another ingress node by the load balancer) to
 * answer correctly. A receiver tells the two apart by the first two bits after the UDP header,
 * as GUE defines: 01 is an IPv4 header (variant 1), 00 a GUE header.
 *
 * Decapsulation accepts only sources listed in sl_tunnel_nodes4 (the cluster's node addresses,
 * written by the agent from Node objects): tunnel traffic from anyone else is dropped and
 * counted (SL_DROP_TUNNEL_SOURCE), so nobody outside the cluster can inject packets that bypass
 * the node's view of the client.
 */
#ifndef SL_LIB_TUNNEL_H
#define SL_LIB_TUNNEL_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"
#include "lb.h"

/* Set by user space before load (--external-mode, --tunnel-port, --tunnel-mtu). */
const volatile __u32 sl_external_mode = SL_EXT_MODE_SNAT;
const volatile __u32 sl_tunnel_port = SL_TUNNEL_PORT_DEFAULT; /* host order */
const volatile __u32 sl_tunnel_mtu = 1500; /* the MTU of the path between nodes */

#define SL_IP_DF_BIT 0x4000 /* don't fragment (host order, in frag_off) */

/* GUE byte 0: variant 0 (00), C 0, Hlen 2 (32-bit words of optional data). */
#define SL_GUE_V0_HLEN2 0x02

struct sl_tunnel_hdr {
	struct iphdr ip;
	struct udphdr udp;
};
_Static_assert(sizeof(struct sl_tunnel_hdr) == SL_TUNNEL_OVERHEAD, "tunnel header size");

/* A DSR flow's GUE header: what follows the UDP header (network order throughout). */
struct sl_gue_dsr4 {
	__u8 ver_c_hlen;      /* SL_GUE_V0_HLEN2 */
	__u8 proto;	      /* IPPROTO_IPIP: an IPv4 packet follows */
	__be16 flags;	      /* 0: no GUE extension fields, so the optional data is private data */
	__be32 frontend_addr; /* private data: the frontend the client sent to ... */
	__be16 frontend_port; /* ... and its port */
	__u8 kind;	      /* SL_TUNNEL_GUE_DSR */
	__u8 reserved;	      /* 0 */
};

struct sl_tunnel_dsr_hdr {
	struct sl_tunnel_hdr outer;
	struct sl_gue_dsr4 gue;
};
_Static_assert(sizeof(struct sl_tunnel_dsr_hdr) == SL_TUNNEL_DSR_OVERHEAD, "DSR header size");

/* What sl_tunnel_decap4 read from the outer headers. */
struct sl_tunnel_in {
	__be32 peer;	      /* the sending node */
	__be32 frontend_addr; /* DSR: the frontend to answer from; 0: Tunnel */
	__be16 frontend_port;
};

/* What sl_tunnel_decap4 found. */
enum sl_tunnel_result {
	SL_TUNNEL_NONE = 0,  /* not tunnel traffic (or tunnelling off): untouched */
	SL_TUNNEL_INNER = 1, /* decapsulated: the skb now holds the inner packet */
	SL_TUNNEL_DROP = 2,  /* tunnel traffic to refuse (counted) */
};

static __always_inline bool sl_tunnel_enabled(void)
{
	return sl_external_mode != SL_EXT_MODE_SNAT;
}

/*
 * DSR mode: whether a new flow of client goes DSR, or Tunnel because the client is in an opt-out
 * CIDR (sl_dsr_optout4: its network cannot take a reply from another node than the one it sent
 * to).
 */
static __always_inline bool sl_dsr_for_client4(__be32 client)
{
	struct sl_dsr_optout_key4 k = {.prefixlen = 32, .addr = client};

	if (sl_external_mode != SL_EXT_MODE_DSR)
		return false;
	return !bpf_map_lookup_elem(&sl_dsr_optout4, &k);
}

/*
 * The largest TCP MSS whose segments fit the path once tunnelled with overhead bytes (no IP or
 * TCP options).
 */
static __always_inline __u16 sl_tunnel_mss(__u32 overhead)
{
	return sl_tunnel_mtu - overhead - sizeof(struct iphdr) - 20;
}

/*
 * The outer UDP source port: a hash of the inner flow, so that ECMP paths and receive queues
 * spread tunnelled flows as they would spread the flows themselves (RFC 8086's advice); 49152 +
 * a 14-bit fold of addresses and ports.
 */
static __always_inline __be16 sl_tunnel_sport(__be32 saddr, __be32 daddr, __be16 sport,
					      __be16 dport)
{
	__u32 h = saddr ^ daddr ^ (((__u32)sport << 16) | dport);

	h ^= h >> 16;
	return bpf_htons(49152 + (h & 0x3fff));
}

/* Fills the outer IPv4 + UDP header of an inner packet of inner_len bytes, overhead in all. */
static __always_inline void sl_tunnel_outer4(struct sl_tunnel_hdr *h, __be32 saddr, __be32 daddr,
					     __be16 udp_sport, __be16 df, __u32 inner_len,
					     __u32 overhead)
{
	h->ip.version = 4;
	h->ip.ihl = 5;
	h->ip.tot_len = bpf_htons(inner_len + overhead);
	h->ip.frag_off = df;
	h->ip.ttl = SL_TUNNEL_TTL;
	h->ip.protocol = IPPROTO_UDP;
	h->ip.saddr = saddr;
	h->ip.daddr = daddr;
	h->ip.check = sl_csum_buf(&h->ip, sizeof(h->ip), 0);
	h->udp.source = udp_sport;
	h->udp.dest = bpf_htons((__u16)sl_tunnel_port);
	h->udp.len = bpf_htons(inner_len + overhead - sizeof(struct iphdr));
	h->udp.check = 0; /* none (IPv4): the inner packet carries its own checksums */
}

/*
 * True for a UDP GSO packet (a socket's UDP_SEGMENT send, as QUIC servers make; the kernel cuts
 * it into datagrams of gso_size bytes each): *seg_len gets the IPv4 length of one of them. Its
 * segment size cannot shrink as a TCP one's does, since it delimits the datagrams.
 */
static __always_inline bool sl_tunnel_udp_gso(struct __sk_buff *skb, __u32 *seg_len)
{
	__u8 vihl, proto;

	if (!skb->gso_segs)
		return false;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &vihl, sizeof(vihl)) < 0 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, protocol), &proto,
			       sizeof(proto)) < 0)
		return false;
	if (proto != IPPROTO_UDP)
		return false;
	*seg_len = (vihl & 0xf) * 4 + sizeof(struct udphdr) + skb->gso_size;
	return true;
}

/*
 * Wraps the IPv4 packet of the frame in an outer IPv4 (saddr -> daddr) + UDP header and, for a
 * DSR flow (frontend_addr set), the GUE header carrying frontend_addr:frontend_port. The inner
 * packet's DF bit is copied to the outer header. A GSO packet's segment size shrinks by the
 * overhead (bpf_skb_adjust_room), so each segment still fits once wrapped. Returns 0 or a
 * negative errno.
 */
static __always_inline int sl_tunnel_encap4(struct __sk_buff *skb, __be32 saddr, __be32 daddr,
					    __be16 udp_sport, __be32 frontend_addr,
					    __be16 frontend_port)
{
	__u32 inner_len = skb->len - ETH_HLEN;
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP;
	struct sl_tunnel_dsr_hdr h = {};
	__be16 frag_off = 0, df;
	__u32 seg_len;

	/*
	 * A UDP GSO packet keeps its segment size (the kernel refuses to grow it otherwise, and
	 * would count it as a failed rewrite); sl_tunnel_too_big checked that a segment fits.
	 */
	if (sl_tunnel_udp_gso(skb, &seg_len))
		flags |= BPF_F_ADJ_ROOM_FIXED_GSO;

	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, frag_off), &frag_off,
			       sizeof(frag_off)) < 0)
		return -1;
	df = frag_off & bpf_htons(SL_IP_DF_BIT);
	if (!frontend_addr) {
		sl_tunnel_outer4(&h.outer, saddr, daddr, udp_sport, df, inner_len,
				 SL_TUNNEL_OVERHEAD);
		if (bpf_skb_adjust_room(skb, SL_TUNNEL_OVERHEAD, BPF_ADJ_ROOM_MAC, flags) < 0)
			return -1;
		return bpf_skb_store_bytes(skb, ETH_HLEN, &h.outer, SL_TUNNEL_OVERHEAD, 0);
	}
	sl_tunnel_outer4(&h.outer, saddr, daddr, udp_sport, df, inner_len, SL_TUNNEL_DSR_OVERHEAD);
	h.gue.ver_c_hlen = SL_GUE_V0_HLEN2;
	h.gue.proto = IPPROTO_IPIP;
	h.gue.frontend_addr = frontend_addr;
	h.gue.frontend_port = frontend_port;
	h.gue.kind = SL_TUNNEL_GUE_DSR;
	if (bpf_skb_adjust_room(skb, SL_TUNNEL_DSR_OVERHEAD, BPF_ADJ_ROOM_MAC, flags) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN, &h, SL_TUNNEL_DSR_OVERHEAD, 0);
}

/*
 * True when the packet, once wrapped, would not fit the path: a TCP GSO packet is cut into
 * segments that fit (see sl_tunnel_encap4), a UDP GSO packet's segments are measured, anything
 * else is measured whole.
 */
static __always_inline bool sl_tunnel_too_big(struct __sk_buff *skb, __u32 overhead)
{
	__u32 seg_len;

	if (sl_tunnel_udp_gso(skb, &seg_len))
		return seg_len + overhead > sl_tunnel_mtu;
	return !skb->gso_segs && skb->len - ETH_HLEN + overhead > sl_tunnel_mtu;
}

/*
 * A DSR flow's GUE header at off, checked: *in gets the frontend. Anything else after the UDP
 * header that is no IPv4 header is refused (a node sends nothing else).
 */
static __always_inline bool sl_tunnel_read_dsr4(struct __sk_buff *skb, __u32 off,
						struct sl_tunnel_in *in)
{
	struct sl_gue_dsr4 g;

	if (bpf_skb_load_bytes(skb, off, &g, sizeof(g)) < 0)
		return false;
	if (g.ver_c_hlen != SL_GUE_V0_HLEN2 || g.proto != IPPROTO_IPIP || g.flags ||
	    g.kind != SL_TUNNEL_GUE_DSR || !g.frontend_addr)
		return false;
	in->frontend_addr = g.frontend_addr;
	in->frontend_port = g.frontend_port;
	return true;
}

/*
 * Unwraps tunnel traffic arriving at the host interface: IPv4 (no options) + UDP to
 * sl_tunnel_port from a cluster node, followed by an IPv4 header (Tunnel) or a DSR GUE header
 * and an IPv4 header (DSR). *in receives the sending node and, for DSR, the frontend. In every
 * mode: the mode decides what this node sends, but while a cluster switches modes (a rolling
 * restart) a node still in SNAT mode must take what a node already in Tunnel or DSR mode sends
 * it.
 */
static __always_inline enum sl_tunnel_result sl_tunnel_decap4(struct __sk_buff *skb,
							      struct sl_tunnel_in *in)
{
	struct sl_tunnel_node_key4 node = {};
	__u32 overhead = SL_TUNNEL_OVERHEAD;
	struct sl_tunnel_hdr h;
	__be16 proto;
	__u8 first, inner_v;

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) < 0 ||
	    proto != bpf_htons(ETH_P_IP))
		return SL_TUNNEL_NONE;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &h, sizeof(h)) < 0)
		return SL_TUNNEL_NONE;
	if (h.ip.version != 4 || h.ip.ihl != 5 || h.ip.protocol != IPPROTO_UDP ||
	    (h.ip.frag_off & bpf_htons(SL_IP_MF | SL_IP_OFFSET)) ||
	    h.udp.dest != bpf_htons((__u16)sl_tunnel_port))
		return SL_TUNNEL_NONE;
	node.addr = h.ip.saddr;
	if (!bpf_map_lookup_elem(&sl_tunnel_nodes4, &node)) {
		sl_count_drop(SL_DROP_TUNNEL_SOURCE);
		return SL_TUNNEL_DROP;
	}
	if (bpf_skb_load_bytes(skb, ETH_HLEN + SL_TUNNEL_OVERHEAD, &first, 1) < 0)
		goto malformed;
	if ((first >> 6) == 0) { /* GUE variant 0: a DSR flow's header */
		if (!sl_tunnel_read_dsr4(skb, ETH_HLEN + SL_TUNNEL_OVERHEAD, in))
			goto malformed;
		overhead = SL_TUNNEL_DSR_OVERHEAD;
	}
	if (bpf_skb_load_bytes(skb, ETH_HLEN + overhead, &inner_v, 1) < 0 || (inner_v >> 4) != 4)
		goto malformed;
	/* The inner segment size stays what it was (FIXED_GSO): only the outer headers go. */
	if (bpf_skb_adjust_room(skb, -(__s32)overhead, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO) <
	    0)
		goto malformed;
	in->peer = h.ip.saddr;
	return SL_TUNNEL_INNER;
malformed:
	sl_count_drop(SL_DROP_MALFORMED);
	return SL_TUNNEL_DROP;
}

#endif /* SL_LIB_TUNNEL_H */
