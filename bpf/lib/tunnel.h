/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node-to-node tunnel of the Tunnel mode (docs/external-traffic.md): the client's packet, as
 * the ingress node translated it (destination the backend, source the client), travels inside an
 * outer IPv4 + UDP header to the backend's node, and the backend's replies travel back the same
 * way. The encapsulation is GUE variant 1 (FOU): the inner IPv4 header right after the UDP
 * header, 28 bytes in all. UDP, because cloud networks carry it where they do not carry IP-in-IP
 * (Azure drops protocol 4) and a security-group rule for one UDP port is the usual ask (AWS).
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

struct sl_tunnel_hdr {
	struct iphdr ip;
	struct udphdr udp;
};
_Static_assert(sizeof(struct sl_tunnel_hdr) == SL_TUNNEL_OVERHEAD, "tunnel header size");

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

/* The largest TCP MSS whose segments fit the path once tunnelled (no IP or TCP options). */
static __always_inline __u16 sl_tunnel_mss(void)
{
	return sl_tunnel_mtu - SL_TUNNEL_OVERHEAD - sizeof(struct iphdr) - 20;
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

/*
 * Wraps the IPv4 packet of the frame in an outer IPv4 (saddr -> daddr) + UDP header. The inner
 * packet's DF bit is copied to the outer header. A GSO packet's segment size shrinks by the
 * overhead (bpf_skb_adjust_room), so each segment still fits once wrapped. Returns 0 or a
 * negative errno.
 */
static __always_inline int sl_tunnel_encap4(struct __sk_buff *skb, __be32 saddr, __be32 daddr,
					    __be16 udp_sport)
{
	__u32 inner_len = skb->len - ETH_HLEN;
	struct sl_tunnel_hdr h = {};
	__be16 frag_off = 0;

	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, frag_off), &frag_off,
			       sizeof(frag_off)) < 0)
		return -1;
	h.ip.version = 4;
	h.ip.ihl = 5;
	h.ip.tot_len = bpf_htons(inner_len + SL_TUNNEL_OVERHEAD);
	h.ip.frag_off = frag_off & bpf_htons(SL_IP_DF_BIT);
	h.ip.ttl = SL_TUNNEL_TTL;
	h.ip.protocol = IPPROTO_UDP;
	h.ip.saddr = saddr;
	h.ip.daddr = daddr;
	h.ip.check = sl_csum_buf(&h.ip, sizeof(h.ip), 0);
	h.udp.source = udp_sport;
	h.udp.dest = bpf_htons((__u16)sl_tunnel_port);
	h.udp.len = bpf_htons(inner_len + sizeof(struct udphdr));
	h.udp.check = 0; /* none (IPv4): the inner packet carries its own checksums */
	if (bpf_skb_adjust_room(skb, SL_TUNNEL_OVERHEAD, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), 0);
}

/*
 * True when the packet, once wrapped, would not fit the path: a GSO packet is cut into segments
 * that fit (see sl_tunnel_encap4), anything else is measured whole.
 */
static __always_inline bool sl_tunnel_too_big(struct __sk_buff *skb)
{
	return !skb->gso_segs && skb->len - ETH_HLEN + SL_TUNNEL_OVERHEAD > sl_tunnel_mtu;
}

/*
 * Unwraps tunnel traffic arriving at the host interface: IPv4 (no options) + UDP to
 * sl_tunnel_port from a cluster node, followed by an IPv4 header. *peer receives the sending
 * node. In every mode: the mode decides what this node sends, but while a cluster switches modes
 * (a rolling restart) a node still in SNAT mode must take what a node already in Tunnel mode
 * sends it.
 */
static __always_inline enum sl_tunnel_result sl_tunnel_decap4(struct __sk_buff *skb, __be32 *peer)
{
	struct sl_tunnel_node_key4 node = {};
	struct sl_tunnel_hdr h;
	__be16 proto;
	__u8 inner_v;

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
	if (bpf_skb_load_bytes(skb, ETH_HLEN + SL_TUNNEL_OVERHEAD, &inner_v, 1) < 0 ||
	    (inner_v >> 4) != 4) {
		sl_count_drop(SL_DROP_MALFORMED);
		return SL_TUNNEL_DROP;
	}
	/* The inner segment size stays what it was (FIXED_GSO): only the outer header goes. */
	if (bpf_skb_adjust_room(skb, -SL_TUNNEL_OVERHEAD, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO) < 0) {
		sl_count_drop(SL_DROP_MALFORMED);
		return SL_TUNNEL_DROP;
	}
	*peer = h.ip.saddr;
	return SL_TUNNEL_INNER;
}

#endif /* SL_LIB_TUNNEL_H */
